"""Home feed, tag pages and search."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import bearer, signup
from tests.sharded import insert_photo, user_id

Client = TestClient[Any, Any]


async def _uid(client: Client, name: str) -> int:
    return await user_id(client.app, name)


async def test_feed_holds_followed_and_own_photos_only(client: Client) -> None:
    me = await signup(client, "reader")
    await signup(client, "followed")
    await signup(client, "ignored")
    mine = await insert_photo(client.app, await _uid(client, "reader"), "mine")
    theirs = await insert_photo(client.app, await _uid(client, "followed"), "theirs")
    await insert_photo(client.app, await _uid(client, "ignored"), "other")
    await client.put("/api/v1/users/followed/follow", headers=bearer(me))
    feed = await (await client.get("/api/v1/feed", headers=bearer(me))).json()
    assert [p["id"] for p in feed["items"]] == [str(theirs), str(mine)]
    await client.delete("/api/v1/users/followed/follow", headers=bearer(me))
    feed = await (await client.get("/api/v1/feed", headers=bearer(me))).json()
    assert [p["id"] for p in feed["items"]] == [str(mine)]
    assert (await client.get("/api/v1/feed")).status == 401


@pytest.mark.parametrize("dense", [False, True])
async def test_feed_pages_have_no_gaps_or_duplicates_while_photos_arrive(
    settings: Any, media_pool: Any, aiohttp_client: Any, dense: bool
) -> None:
    from picshare.app import create_app

    # Both feed plans: per-followee probes, and the newest-first scan.
    tuned = settings.replace(feed={"dense_following": 1 if dense else 10_000})
    client = await aiohttp_client(create_app(tuned, media_pool=media_pool))
    me = await signup(client, "scroller")
    owners = []
    for i in range(5):
        await signup(client, f"poster{i}")
        await client.put(f"/api/v1/users/poster{i}/follow", headers=bearer(me))
        owners.append(await _uid(client, f"poster{i}"))
    before = {str(await insert_photo(client.app, owners[i % 5], f"p{i}")) for i in range(40)}
    stop = asyncio.Event()

    async def keep_posting() -> None:
        n = 0
        while not stop.is_set():
            await insert_photo(client.app, owners[n % 5], "late")
            n += 1
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(keep_posting())
    seen: list[str] = []
    cursor = None
    try:
        while True:
            query = "?limit=6" + (f"&cursor={cursor}" if cursor else "")
            body = await (await client.get("/api/v1/feed" + query, headers=bearer(me))).json()
            seen += [p["id"] for p in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        await writer
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_tags_are_normalized(client: Client) -> None:
    await signup(client, "tagger")
    pid = await insert_photo(client.app, await _uid(client, "tagger"), "x", ["café"])
    for spelling in ("café", "CAFÉ", "%23caf%C3%A9", "cafe%CC%81"):  # NFC, case, #, NFD
        body = await (await client.get(f"/api/v1/tags/{spelling}/photos")).json()
        assert [p["id"] for p in body["items"]] == [str(pid)], spelling


async def test_search_users_tags_and_captions(client: Client) -> None:
    await signup(client, "sunny_day")
    await signup(client, "sunflower")
    await signup(client, "moonlight")
    token = await signup(client, "searcher")
    from tests import imaging
    from tests.conftest import upload

    resp = await upload(
        client,
        token,
        imaging.jpeg_bytes(40, 40),
        caption="Golden sunset over Lisbon",
        tags="sunset,travel",
    )
    from tests.conftest import wait_ready

    photo = await wait_ready(client, token, (await resp.json())["id"])
    body = await (await client.get("/api/v1/search?q=sun")).json()
    usernames = [u["username"] for u in body["users"]]
    assert usernames[:2] == sorted(["sunny_day", "sunflower"]) or set(usernames[:2]) == {
        "sunny_day",
        "sunflower",
    }
    assert "moonlight" not in usernames
    assert [t["tag"] for t in body["tags"]] == ["sunset"]
    assert [p["id"] for p in body["photos"]] == [photo["id"]]
    fuzzy = await (await client.get("/api/v1/search?q=sunflowr")).json()
    assert fuzzy["users"][0]["username"] == "sunflower"
    words = await (await client.get("/api/v1/search?q=lisbon%20gold")).json()
    assert [p["id"] for p in words["photos"]] == [photo["id"]]
    for bad in ("", "?q=", "?q=" + "x" * 101):
        resp = await client.get("/api/v1/search" + bad)
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["field"] == "q"

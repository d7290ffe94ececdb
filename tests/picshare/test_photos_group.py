"""The PHOTOS table group in a database of its own
(`PICSHARE_DATABASE_GROUP_PHOTOS_URL`), a fresh empty one, on a site without
shards: likes, comments, notifications and the search index go with it (they
take their apart paths there), the users' database keeps only USERS' (and
PAYMENTS') rows. An upload becomes ready there; its detail and every list
show the owner's fields as the photo's copies; the owner's photo_count, a new
display name and privacy follow by jobs; the privacy rule is given the
viewer's followees; a deletion empties it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from picshare.photo_counts import CountBehind
from picshare.photos import OWNER_COUNT_JOB
from storage.router import PRIMARY
from storage.table_groups import EVERY_DATABASE, TABLES, WITH_PHOTOS
from tests import imaging
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload, wait_ready
from tests.groups_apart import count, empty_database, until
from tests.harness import PostgresForTests, tables_of

Client = TestClient[Any, Any]


@pytest.fixture
async def photos_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    async with empty_database(postgres, "photos") as url:
        yield url


@pytest.fixture
async def client(
    tmp_path: Path,
    database_url: str,
    photos_url: str,
    media_pool: Any,
    aiohttp_client: AiohttpClient,
) -> Client:
    """An app whose photos live in `photos_url`; one users' database (photos
    apart are refused on a sharded site, so the sharded pass runs this on
    its first shard's database alone)."""
    database = {
        "url": database_url,
        "shards": (),
        "group_payments_url": "",
        "group_photos_url": photos_url,
    }
    settings = make_settings(tmp_path / "data", database_url, database=database)
    made: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return made


async def test_photos_in_their_own_database(
    client: Client, photos_url: str, database_url: str
) -> None:
    shards = client.app[keys.DATABASES]
    assert shards.photos is not None and shards.photos not in shards.physical
    # The groups beside the photo go with it, in their apart paths.
    assert shards.likes is shards.comments is shards.inbox is shards.search_db is shards.photos
    hosted = TABLES["photos"].union(*(TABLES[g] for g in WITH_PHOTOS))
    assert await tables_of(photos_url) == hosted | EVERY_DATABASE

    pia, fan, nosy = [await signup(client, n) for n in ("pia", "fan", "nosy")]
    await client.patch("/api/v1/me", json={"display_name": "Pia"}, headers=bearer(pia))
    assert (await client.put("/api/v1/users/pia/follow", headers=bearer(fan))).status == 200
    made = await upload(client, pia, imaging.jpeg_bytes(40, 40), caption="harbour", tags="sea")
    assert made.status == 201, await made.text()
    pid = (await made.json())["id"]
    photo = await wait_ready(client, pia, pid)
    assert photo["status"] == "ready"
    assert photo["owner"] == {"username": "pia", "display_name": "Pia"}
    assert await count(photos_url, "SELECT count(*) FROM photos") == 1
    # The users' database (the suite's template has an unused photos table) got none.
    assert await count(database_url, "SELECT count(*) FROM photos") == 0

    async def profile(field: str) -> Any:
        body = await (await client.get("/api/v1/users/pia", headers=bearer(pia))).json()
        return body[field]

    assert await until(lambda: profile("photo_count"), 1) == 1

    async def listed(token: str | None, path: str) -> list[dict[str, Any]]:
        resp = await client.get(path, headers=bearer(token) if token else {})
        if resp.status == 404:
            return []
        assert resp.status == 200, (path, await resp.text())
        body = await resp.json()
        return list(body["photos"] if "photos" in body else body["items"])

    lists = ("/api/v1/photos", "/api/v1/users/pia/photos", "/api/v1/tags/sea/photos")
    for path in (*lists, "/api/v1/feed", "/api/v1/search?q=harbour"):
        items = await listed(fan, path)
        assert [p["id"] for p in items] == [pid], path
        assert items[0]["owner"]["display_name"] == "Pia", path

    # `run.py search reindex` rebuilds the index from the photos' own database.
    async with shards.photos.write() as conn:
        await conn.execute("TRUNCATE search_photos, search_tags")
    assert await listed(fan, "/api/v1/search?q=harbour") == []
    report = await client.app[keys.SEARCH_INDEX].reindex(restart=True)
    assert report.photos == 1 and report.tags == 1, report
    assert [p["id"] for p in await listed(fan, "/api/v1/search?q=harbour")] == [pid]
    assert [p["id"] for p in await listed(fan, "/api/v1/tags/sea/photos")] == [pid]

    # A like and a comment: beside the photo, by their apart paths.
    assert (await client.put(f"/api/v1/photos/{pid}/like", headers=bearer(fan))).status == 200
    said = await client.post(
        f"/api/v1/photos/{pid}/comments", json={"text": "hi"}, headers=bearer(fan)
    )
    assert said.status == 201

    async def counts() -> tuple[int, int]:
        body = await (await client.get(f"/api/v1/photos/{pid}", headers=bearer(fan))).json()
        return body["like_count"], body["comment_count"]

    assert await until(counts, (1, 1)) == (1, 1)

    async def kinds() -> list[str]:
        body = await (await client.get("/api/v1/notifications", headers=bearer(pia))).json()
        return sorted(n["kind"] for n in body["items"])

    assert await until(kinds, ["comment", "follow", "like"]) == ["comment", "follow", "like"]

    # A new display name reaches the photo's copy by a job.
    await client.patch("/api/v1/me", json={"display_name": "Pia K"}, headers=bearer(pia))

    async def copied() -> tuple[str, bool]:
        return await _owner_copy(client, pid)

    assert await until(copied, ("Pia K", False)) == ("Pia K", False)
    names = {p["owner"]["display_name"] for p in await listed(fan, "/api/v1/users/pia/photos")}
    assert names == {"Pia K"}

    # Private: the stranger sees nothing, the follower (approved: followed
    # before) everything, with signed media URLs.
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(pia))
    assert await until(copied, ("Pia K", True)) == ("Pia K", True)
    for path in lists:
        assert await listed(nosy, path) == [], path
        assert await listed(None, path) == [], path
    assert (await client.get(f"/api/v1/photos/{pid}", headers=bearer(nosy))).status == 404
    for path in (*lists[1:], "/api/v1/feed"):
        assert [p["id"] for p in await listed(fan, path)] == [pid], path
    detail = await client.get(f"/api/v1/photos/{pid}", headers=bearer(fan))
    assert detail.status == 200
    urls = (await detail.json())["urls"]
    assert all("sig=" in u for u in urls.values() if u), urls
    medium = urls["medium"].split("?")[0]
    assert (await client.get(medium)).status == 404  # unsigned: not for everyone

    # A follow request approved: the stranger sees it from then on.
    asked = await client.put("/api/v1/users/pia/follow", headers=bearer(nosy))
    assert (await asked.json())["requested_by_me"] is True
    ok = await client.post("/api/v1/me/follow-requests/nosy/approve", headers=bearer(pia))
    assert ok.status == 204
    assert (await client.get(f"/api/v1/photos/{pid}", headers=bearer(nosy))).status == 200
    for path in (*lists[1:], "/api/v1/feed"):
        assert [p["id"] for p in await listed(nosy, path)] == [pid], path

    # Deleted: gone from the photos' database, the count follows.
    assert (await client.delete(f"/api/v1/photos/{pid}", headers=bearer(pia))).status == 204
    assert await count(photos_url, "SELECT count(*) FROM photos") == 0
    assert await until(lambda: profile("photo_count"), 0) == 0


async def _owner_copy(client: Client, photo_id: str) -> tuple[str, bool]:
    photos = client.app[keys.DATABASES].photos
    assert photos is not None
    async with photos.read() as conn:
        row = await conn.fetchrow(
            "SELECT owner_display_name, owner_private FROM photos WHERE id = $1", int(photo_id)
        )
    assert row is not None
    return str(row[0]), bool(row[1])


@pytest.mark.one_pass
async def test_owner_count_job_counts_once_in_any_order(client: Client) -> None:
    """The owner's photo_count job run twice counts once; a deletion's run
    before its upload's fails (to run again) and changes nothing meanwhile;
    an upload's brings the photos' copies of the owner up to date."""
    pia = await signup(client, "pia")
    await client.patch("/api/v1/me", json={"display_name": "Pia"}, headers=bearer(pia))
    photo = await upload(client, pia, imaging.jpeg_bytes(24, 24))
    pid = (await photo.json())["id"]
    shards = client.app[keys.DATABASES]
    uid = int((await (await client.get("/api/v1/me", headers=bearer(pia))).json())["id"])
    run = client.app[keys.PHOTOS].job_kinds()[OWNER_COUNT_JOB].run

    async def counted() -> int:
        async with shards.of_user(uid).read(PRIMARY) as conn:
            return int(await conn.fetchval("SELECT photo_count FROM users WHERE id = $1", uid))

    assert await until(counted, 1) == 1
    assert shards.photos is not None
    async with shards.photos.write() as conn:  # a copy made just before a rename
        await conn.execute("UPDATE photos SET owner_display_name = 'old' WHERE id = $1", int(pid))
    added = {"key": 7_001, "user_id": uid, "delta": 1}
    removed = {"key": 7_002, "user_id": uid, "delta": -1}
    with pytest.raises(CountBehind):
        await run({**removed, "delta": -2})  # more removed than there are
    assert await counted() == 1
    await run(added)
    await run(added)  # a rerun: its key is recorded
    assert await counted() == 2
    assert await _owner_copy(client, pid) == ("Pia", False)
    await run(removed)
    assert await counted() == 1


async def test_going_private_hides_the_photos_before_the_account_commits(
    client: Client, database_url: str
) -> None:
    """Apart, the photos' copy of "private" is set before the account's own
    change commits, not by the job after it: while the change waits (its
    row held here), the photos already say private, and strangers'
    lists never show them in between."""
    pia, nosy = await signup(client, "pia"), await signup(client, "nosy")
    made = await upload(client, pia, imaging.jpeg_bytes(24, 24), tags="sea")
    pid = (await made.json())["id"]
    await wait_ready(client, pia, pid)
    # The lists that read the photos' copy (a user's own list asks the
    # account itself, which is private the moment its change commits).
    public = ("/api/v1/photos", "/api/v1/tags/sea/photos")
    for path in public:
        assert pid in await (await client.get(path, headers=bearer(nosy))).text(), path
    held = await asyncpg.connect(database_url)
    try:
        async with held.transaction():
            await held.execute("SELECT 1 FROM users WHERE username = 'pia' FOR UPDATE")
            change = asyncio.create_task(
                client.patch("/api/v1/me", json={"private": True}, headers=bearer(pia))
            )

            async def hidden() -> bool:
                return (await _owner_copy(client, pid))[1]

            assert await until(hidden, True) is True
            assert not change.done()  # the account's own change is still waiting
            for path in public:
                assert pid not in await (await client.get(path, headers=bearer(nosy))).text()
        assert (await change).status == 200
    finally:
        await held.close()
    assert (await _owner_copy(client, pid))[1] is True

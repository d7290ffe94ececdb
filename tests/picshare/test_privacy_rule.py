"""The privacy rule (picshare/privacy.py) gives one answer on every surface.

For each kind of viewer (anonymous, stranger, pending requester, approved
follower, owner), two accounts (public, private) with a ready, a processing
and a rejected photo each: the REST detail, the REST lists (photos, a user's
photos, a tag, the feed, search), the HTML photo and profile pages, the media
URLs' signatures and the media server all agree with the rule as written
here, independently of the code under test.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from tests.conftest import bearer, signup, upload
from tests.sharded import pool_of_user

Client = TestClient[Any, Any]

VIEWERS = ("anonymous", "stranger", "requester", "follower", "owner")
ACCOUNTS = {"openbook": False, "closedbook": True}  # username -> private
STATES = ("ready", "processing", "rejected")
WORD = "rulecheck"  # in every caption and tag


def sees(viewer: str, private: bool, state: str) -> bool:
    """The rule, restated: owners see everything of theirs; others see ready
    photos of public accounts, and of private ones once their follow is approved."""
    if viewer == "owner":
        return True
    return state == "ready" and (not private or viewer == "follower")


def sees_account(viewer: str, private: bool) -> bool:
    return not private or viewer in ("owner", "follower")


@dataclass(frozen=True)
class Photo:
    id: str
    account: str
    private: bool
    state: str
    medium_key: str


async def _ready_in_db(client: Client, photo_id: str) -> None:
    # Polled in the database, not over the API: a read would fill the photo
    # cache before the test moves the photo to its state.
    pool = pool_of_user(client.app, int(photo_id))
    for _ in range(300):
        async with pool.acquire() as conn:
            status = await conn.fetchval("SELECT status FROM photos WHERE id = $1", int(photo_id))
        if status == "ready":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"photo {photo_id} never became ready")


# account -> viewer kind -> that viewer's request headers
Headers = dict[str, dict[str, dict[str, str]]]


async def _world(client: Client) -> tuple[Headers, list[Photo]]:
    owners = {name: await signup(client, name) for name in ACCOUNTS}
    for name, private in ACCOUNTS.items():
        if private:
            await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owners[name]))
    viewers = {kind: await signup(client, f"{kind}_v") for kind in VIEWERS if kind != "owner"}
    for name in ACCOUNTS:
        await client.put(f"/api/v1/users/{name}/follow", headers=bearer(viewers["follower"]))
    await client.post(
        "/api/v1/me/follow-requests/follower_v/approve", headers=bearer(owners["closedbook"])
    )
    resp = await client.put("/api/v1/users/closedbook/follow", headers=bearer(viewers["requester"]))
    assert (await resp.json())["requested_by_me"] is True

    photos: list[Photo] = []
    size = 40
    for name, private in ACCOUNTS.items():
        for state in STATES:
            size += 4  # different bytes: renditions are content-addressed
            resp = await upload(
                client,
                owners[name],
                imaging.jpeg_bytes(size, size),
                caption=f"{WORD} {name} {state}",
                tags=WORD,
            )
            assert resp.status == 201, await resp.text()
            photo_id = (await resp.json())["id"]
            await _ready_in_db(client, photo_id)
            async with pool_of_user(client.app, int(photo_id)).acquire() as conn:
                # Renditions are kept, so the signing decision stays observable.
                key = await conn.fetchval(
                    "UPDATE photos SET status = $2 WHERE id = $1 RETURNING medium_key",
                    int(photo_id),
                    state,
                )
            photos.append(Photo(photo_id, name, private, state, key))
    headers: Headers = {
        name: {kind: ({} if kind == "anonymous" else bearer(tok)) for kind, tok in viewers.items()}
        for name in ACCOUNTS
    }
    for name in ACCOUNTS:
        headers[name]["owner"] = bearer(owners[name])
    return headers, photos


def _ids(items: list[dict[str, Any]]) -> set[str]:
    return {p["id"] for p in items}


def _signed(item: dict[str, Any]) -> bool:
    urls = [u for u in item["urls"].values() if u is not None]
    assert urls
    signed = {"sig=" in u for u in urls}
    assert len(signed) == 1, urls  # all of a photo's URLs, or none, are signed
    return signed.pop()


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_every_surface_agrees_with_the_rule(client: Client, viewer: str) -> None:
    headers, photos = await _world(client)
    html = {"Accept": "text/html"}
    lists: dict[str, list[dict[str, Any]]] = {}

    for name, private in ACCOUNTS.items():
        h = headers[name][viewer]
        ours = {p.id for p in photos if p.account == name}
        account_visible = sees_account(viewer, private)
        # The account's own lists: 404 as a whole when its photos are not visible.
        for path in (f"/api/v1/users/{name}/photos", f"/api/v1/photos?user={name}"):
            resp = await client.get(path, headers=h)
            assert resp.status == (200 if account_visible else 404), (path, name)
            if resp.status == 200:
                lists[f"{path} as {name}"] = (await resp.json())["items"]
        profile = await (await client.get(f"/api/v1/users/{name}", headers=h)).json()
        assert profile["can_see_photos"] is account_visible, name
        followers = await client.get(f"/api/v1/users/{name}/followers", headers=h)
        assert followers.status == (200 if account_visible else 404), name
        page = await client.get(f"/u/{name}", headers={**h, **html})
        assert page.status == 200
        shown = set(re.findall(r'href="/p/([0-9]+)"', await page.text())) & ours
        expected = {p.id for p in photos if p.account == name and sees(viewer, private, p.state)}
        assert shown == expected, f"profile page of {name}"
        # Lists across accounts, as the same viewer sees them.
        for path in (f"/api/v1/tags/{WORD}/photos", "/api/v1/photos", "/api/v1/feed"):
            if path == "/api/v1/feed" and viewer == "anonymous":
                continue
            resp = await client.get(path, headers=h)
            assert resp.status == 200, path
            lists[f"{path} as {name}"] = (await resp.json())["items"]
        found = await client.get(f"/api/v1/search?q={WORD}", headers=h)
        lists[f"search as {name}"] = (await found.json())["photos"]

    for p in photos:
        h = headers[p.account][viewer]
        allowed = sees(viewer, p.private, p.state)
        everyone = sees("anonymous", p.private, p.state)
        where = f"{p.state} photo of {p.account}"
        detail = await client.get(f"/api/v1/photos/{p.id}", headers=h)
        assert detail.status == (200 if allowed else 404), where
        page = await client.get(f"/p/{p.id}", headers={**h, **html})
        assert page.status == (200 if allowed else 404), where
        if allowed:
            body = await detail.json()
            assert _signed(body) is not everyone, where
            text = await page.text()
            if p.state == "ready":  # the page shows the image only once it is ready
                assert (f"{p.medium_key}?exp=" in text) is not everyone, where
            # Likes and comments: signed-in viewers, on ready photos only.
            reacts = viewer != "anonymous" and p.state == "ready"
            assert (f'action="/p/{p.id}/like"' in text) is reacts, where
            assert (f'action="/p/{p.id}/comments"' in text) is reacts, where
        for surface, items in lists.items():
            if not surface.endswith(f" as {p.account}"):
                continue
            listed = [i for i in items if i["id"] == p.id]
            if surface.startswith("/api/v1/photos as"):
                expect = everyone  # the public list: photos everyone may see
            elif surface.startswith("/api/v1/feed"):
                # Ready photos of oneself and of the accounts one follows.
                expect = p.state == "ready" and viewer in ("owner", "follower")
            else:
                expect = allowed
            assert bool(listed) is expect, (surface, where)
            if listed:
                assert _signed(listed[0]) is not everyone, (surface, where)
        # The media server: a plain URL only for photos everyone may see.
        plain = await client.get(f"/media/{p.medium_key}")
        assert plain.status == (200 if everyone else 404), where

"""Likes, comments and follows over the REST API, with exact counts under concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from tests.conftest import bearer, signup, upload_ready
from tests.sharded import follows_settled, pool_of_user, user_id, wait_for

Client = TestClient[Any, Any]


async def test_like_is_idempotent_and_counts(client: Client) -> None:
    owner = await signup(client, "owner")
    fan = await signup(client, "fan")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(64, 64))
    url = f"/api/v1/photos/{photo['id']}/like"
    for _ in range(2):
        resp = await client.put(url, headers=bearer(fan))
        assert resp.status == 200
        assert await resp.json() == {"like_count": 1, "liked": True}
    got = await (await client.get(f"/api/v1/photos/{photo['id']}", headers=bearer(fan))).json()
    assert got["liked_by_me"] is True
    assert got["like_count"] == 1
    for _ in range(2):
        resp = await client.delete(url, headers=bearer(fan))
        assert await resp.json() == {"like_count": 0, "liked": False}
    assert (await client.put("/api/v1/photos/1/like", headers=bearer(fan))).status == 404
    assert (await client.put(url)).status == 401


async def test_fifty_concurrent_likes_and_unlikes_count_exactly(client: Client) -> None:
    owner = await signup(client, "popular")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(64, 64))
    tokens = await asyncio.gather(*(signup(client, f"liker{i}") for i in range(50)))
    url = f"/api/v1/photos/{photo['id']}/like"
    # Every user likes twice at once; half of them also unlike.
    await asyncio.gather(
        *(client.put(url, headers=bearer(t)) for t in tokens),
        *(client.put(url, headers=bearer(t)) for t in tokens),
    )
    await asyncio.gather(*(client.delete(url, headers=bearer(t)) for t in tokens[:25]))
    pool = client.app[keys.DATABASES].of_id(int(photo["id"])).primary.pool
    stored = await pool.fetchval("SELECT like_count FROM photos WHERE id = $1", int(photo["id"]))
    actual = await pool.fetchval("SELECT count(*) FROM likes WHERE photo_id = $1", int(photo["id"]))
    assert stored == actual == 25


async def test_repeated_like_unlike_notifies_once(client: Client) -> None:
    owner = await signup(client, "owner2")
    fan = await signup(client, "fan2")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(64, 64))
    url = f"/api/v1/photos/{photo['id']}/like"
    for _ in range(3):
        await client.put(url, headers=bearer(fan))
        await client.delete(url, headers=bearer(fan))
    await client.put(url, headers=bearer(owner))  # one's own like notifies nobody
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(owner))).json()
    likes = [n for n in inbox["items"] if n["kind"] == "like"]
    assert len(likes) == 1
    assert likes[0]["actor"]["username"] == "fan2"
    assert likes[0]["text"] == "fan2 liked your photo"


async def test_comments_create_list_delete_and_rights(client: Client) -> None:
    owner = await signup(client, "author")
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(64, 64))
    url = f"/api/v1/photos/{photo['id']}/comments"
    resp = await client.post(url, json={"text": "  Nice <b>shot</b>  "}, headers=bearer(alice))
    assert resp.status == 201
    created = await resp.json()
    assert created["text"] == "Nice <b>shot</b>"
    assert created["user"]["username"] == "alice"
    for bad in ({"text": ""}, {"text": "x" * 2201}, {}, {"text": 5}):
        resp = await client.post(url, json=bad, headers=bearer(alice))
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["field"] == "text"
    listed = await (await client.get(url)).json()
    assert [c["id"] for c in listed["items"]] == [created["id"]]
    got = await (await client.get(f"/api/v1/photos/{photo['id']}")).json()
    assert got["comment_count"] == 1
    cid = created["id"]
    assert (await client.delete(f"/api/v1/comments/{cid}", headers=bearer(bob))).status == 403
    assert (await client.delete(f"/api/v1/comments/{cid}", headers=bearer(owner))).status == 204
    assert (await client.delete(f"/api/v1/comments/{cid}", headers=bearer(owner))).status == 404
    second = await (await client.post(url, json={"text": "again"}, headers=bearer(alice))).json()
    resp = await client.delete(f"/api/v1/comments/{second['id']}", headers=bearer(alice))
    assert resp.status == 204
    got = await (await client.get(f"/api/v1/photos/{photo['id']}")).json()
    assert got["comment_count"] == 0


async def test_comment_author_display_name_follows_profile_edits(client: Client) -> None:
    owner = await signup(client, "poster")
    alice = await signup(client, "writer")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(64, 64))
    url = f"/api/v1/photos/{photo['id']}/comments"
    await client.post(url, json={"text": "hello"}, headers=bearer(alice))
    await client.patch("/api/v1/me", json={"display_name": "Ms Writer"}, headers=bearer(alice))
    listed = await (await client.get(url)).json()
    assert listed["items"][0]["user"] == {"username": "writer", "display_name": "Ms Writer"}


async def test_follow_unfollow_counts_and_no_self_follow(client: Client) -> None:
    a = await signup(client, "aa_user")
    b = await signup(client, "bb_user")
    for _ in range(2):
        resp = await client.put("/api/v1/users/bb_user/follow", headers=bearer(a))
        assert resp.status == 200
        body = await resp.json()
        assert body["followed_by_me"] is True
        assert body["follower_count"] == 1
    me = await (await client.get("/api/v1/me", headers=bearer(a))).json()
    assert me["following_count"] == 1
    followers = await (await client.get("/api/v1/users/bb_user/followers")).json()
    assert [u["username"] for u in followers["items"]] == ["aa_user"]
    following = await (await client.get("/api/v1/users/aa_user/following")).json()
    assert [u["username"] for u in following["items"]] == ["bb_user"]
    resp = await client.put("/api/v1/users/aa_user/follow", headers=bearer(a))
    assert resp.status == 400
    assert (await client.put("/api/v1/users/nobody/follow", headers=bearer(a))).status == 404
    for _ in range(2):
        body = await (await client.delete("/api/v1/users/bb_user/follow", headers=bearer(a))).json()
        assert body["followed_by_me"] is False
        assert body["follower_count"] == 0
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(b))).json()
    assert [n["kind"] for n in inbox["items"]] == ["follow"]


async def test_mutual_concurrent_follows_do_not_deadlock(client: Client) -> None:
    tokens = await asyncio.gather(*(signup(client, f"mutual{i}") for i in range(6)))
    names = [f"mutual{i}" for i in range(6)]
    calls = [
        client.put(f"/api/v1/users/{names[j]}/follow", headers=bearer(tokens[i]))
        for i in range(6)
        for j in range(6)
        if i != j
    ]
    results = await asyncio.gather(*calls)
    assert all(r.status == 200 for r in results)
    ids = [await user_id(client.app, name) for name in names]
    # Across shards, each follow's other side (and its count) is written just
    # after its first; one that could not be is left to its mirror job.
    for a in ids:
        for b in ids:
            if a != b:
                await wait_for(lambda a=a, b=b: follows_settled(client.app, a, b))
    rows = [
        await pool_of_user(client.app, i).fetchrow(
            "SELECT follower_count, following_count FROM users WHERE id = $1", i
        )
        for i in ids
    ]
    assert all(r and r["follower_count"] == 5 and r["following_count"] == 5 for r in rows)


async def test_notifications_list_unread_and_mark_read(client: Client) -> None:
    owner = await signup(client, "inbox")
    other = await signup(client, "sender")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(64, 64))
    await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(other))
    await client.post(
        f"/api/v1/photos/{photo['id']}/comments", json={"text": "wow"}, headers=bearer(other)
    )
    await client.put("/api/v1/users/inbox/follow", headers=bearer(other))
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(owner))).json()
    assert [n["kind"] for n in inbox["items"]] == ["follow", "comment", "like"]
    assert inbox["unread_count"] == 3
    assert inbox["items"][1]["text"] == "sender commented: wow"
    oldest = inbox["items"][-1]["id"]
    resp = await client.post(
        "/api/v1/notifications/read", json={"up_to": oldest}, headers=bearer(owner)
    )
    assert await resp.json() == {"marked": 1, "unread_count": 2}
    resp = await client.post("/api/v1/notifications/read", headers=bearer(owner))
    assert (await resp.json())["unread_count"] == 0
    bad = await client.post("/api/v1/notifications/read", json={"up_to": 5}, headers=bearer(owner))
    assert bad.status == 400
    assert (await client.get("/api/v1/notifications")).status == 401


async def test_new_photo_notifies_followers(client: Client) -> None:
    star = await signup(client, "star")
    fan = await signup(client, "follower1")
    await client.put("/api/v1/users/star/follow", headers=bearer(fan))
    photo = await upload_ready(client, star, imaging.jpeg_bytes(64, 64))
    for _ in range(100):
        inbox = await (await client.get("/api/v1/notifications", headers=bearer(fan))).json()
        if inbox["items"]:
            break
        await asyncio.sleep(0.05)
    assert inbox["items"][0]["kind"] == "photo"
    assert inbox["items"][0]["photo_id"] == photo["id"]

"""Notifications (picshare/notify.py): each event writes its row in the action's
transaction and is pushed live once, after the commit; a rollback pushes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys, notify
from picshare.photos import NOTIFY_JOB
from storage import photos_repo, users_repo
from tests.conftest import bearer, signup, upload_ready

Client = TestClient[Any, Any]


def _record(client: Client) -> list[tuple[int, dict[str, Any]]]:
    published: list[tuple[int, dict[str, Any]]] = []

    async def listener(user_id: int, event: dict[str, Any]) -> None:
        published.append((user_id, event))

    client.app[keys.BUS].subscribe(listener)
    return published


async def _inbox(client: Client, token: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/notifications", headers=bearer(token))
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def _user_id(client: Client, username: str) -> int:
    shard = client.app[keys.DATABASES].of_username(username)
    async with shard.primary.pool.acquire() as conn:
        user = await users_repo.user_by_username(conn, username)
    assert user is not None
    return user.id


async def test_each_event_is_stored_and_published_once(client: Client) -> None:
    published = _record(client)
    star = await signup(client, "star")
    fan = await signup(client, "fan")
    shy = await signup(client, "shy")
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(shy))
    await client.put("/api/v1/users/star/follow", headers=bearer(fan))  # follow
    await client.put("/api/v1/users/shy/follow", headers=bearer(fan))  # follow_request
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))  # photo, to fan
    await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))  # like
    await client.delete(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
    await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))  # a repeat
    await client.post(
        f"/api/v1/photos/{photo['id']}/comments", json={"text": "nice"}, headers=bearer(fan)
    )  # comment
    # The photo notification is written by a job: wait for it.
    async with asyncio.timeout(10):
        while not any(n["kind"] == "photo" for n in await _inbox(client, fan)):
            await asyncio.sleep(0.05)

    tokens = {"star": star, "fan": fan, "shy": shy}
    stored = {name: await _inbox(client, token) for name, token in tokens.items()}
    ids = {name: await _user_id(client, name) for name in tokens}
    assert sorted(n["kind"] for n in stored["star"]) == ["comment", "follow", "like"]
    assert [n["kind"] for n in stored["fan"]] == ["photo"]
    assert [n["kind"] for n in stored["shy"]] == ["follow_request"]
    expected = sorted((ids[name], n["id"]) for name, items in stored.items() for n in items)
    assert sorted((user_id, e["id"]) for user_id, e in published) == expected


@pytest.mark.parametrize("approve", [True, False])
async def test_answering_a_request_replaces_its_notification(client: Client, approve: bool) -> None:
    owner = await signup(client, "owner")
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    asker = await signup(client, "asker")
    await client.put("/api/v1/users/owner/follow", headers=bearer(asker))
    published = _record(client)
    verb = "approve" if approve else "decline"
    resp = await client.post(f"/api/v1/me/follow-requests/asker/{verb}", headers=bearer(owner))
    assert resp.status == 204
    kinds = [n["kind"] for n in await _inbox(client, owner)]
    assert kinds == (["follow"] if approve else [])
    assert published == []  # the owner did it: nothing to push to them


async def test_a_rolled_back_transaction_publishes_nothing(client: Client) -> None:
    owner = await signup(client, "poster")
    await signup(client, "liker")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(24, 24))
    published = _record(client)
    shards = client.app[keys.DATABASES]
    home = shards.of_id(int(photo["id"]))
    async with home.primary.pool.acquire() as conn:
        record = await photos_repo.photo_by_id(conn, int(photo["id"]))
    async with shards.of_username("liker").primary.pool.acquire() as conn:
        liker = await users_repo.user_by_username(conn, "liker")
    assert record is not None and liker is not None

    async def failing_like() -> None:
        async with client.app[keys.NOTIFIER].transaction(home) as (
            _conn,
            notes,
        ):
            await notes.liked(record, liker)
            assert len(notes.written) == 1
            raise RuntimeError("the action failed after its notification was written")

    with pytest.raises(RuntimeError):
        await failing_like()
    assert published == []
    assert await _inbox(client, owner) == []


async def test_a_deleted_photos_notifications_go_with_it(client: Client) -> None:
    star = await signup(client, "star")
    fan = await signup(client, "fan")
    await client.put("/api/v1/users/star/follow", headers=bearer(fan))
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    other = await upload_ready(client, star, imaging.jpeg_bytes(36, 36))
    await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
    await client.post(
        f"/api/v1/photos/{photo['id']}/comments", json={"text": "nice"}, headers=bearer(fan)
    )
    async with asyncio.timeout(10):
        while len(await _inbox(client, fan)) < 2:  # both photos' notifications, by a job
            await asyncio.sleep(0.05)
    assert (
        await client.delete(f"/api/v1/photos/{photo['id']}", headers=bearer(star))
    ).status == 204
    # The owner's (like, comment) at once; the followers' wherever they live.
    assert [n["kind"] for n in await _inbox(client, star)] == ["follow"]
    async with asyncio.timeout(10):
        while [n["photo_id"] for n in await _inbox(client, fan)] != [other["id"]]:
            await asyncio.sleep(0.05)


async def test_a_photo_deleted_while_its_followers_are_told_leaves_them_nothing(
    client: Client,
) -> None:
    star = await signup(client, "star")
    fan = await signup(client, "fan")
    await client.put("/api/v1/users/star/follow", headers=bearer(fan))
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    async with asyncio.timeout(10):
        while not await _inbox(client, fan):
            await asyncio.sleep(0.05)
    photo_id, fan_id = int(photo["id"]), await _user_id(client, "fan")
    db = client.app[keys.DATABASES].of_user(fan_id)
    await db.primary.pool.execute("DELETE FROM notifications WHERE user_id = $1", fan_id)
    # The job runs again and is held at its write (another transaction holds
    # the same notification's index entry) while the photo is deleted.
    async with db.primary.pool.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "INSERT INTO notifications (user_id, kind, actor_id, actor_username, photo_id) "
            "VALUES ($1, 'photo', $2, 'star', $3)",
            fan_id,
            await _user_id(client, "star"),
            photo_id,
        )
        async with client.app[keys.DATABASES].of_id(photo_id).transaction() as conn:
            await client.app[keys.JOBS].enqueue(conn, NOTIFY_JOB, {"photo_id": photo_id})
        client.app[keys.JOBS].wake()
        async with asyncio.timeout(10):
            while not await db.primary.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ):
                await asyncio.sleep(0.02)
        resp = await client.delete(f"/api/v1/photos/{photo_id}", headers=bearer(star))
        assert resp.status == 204
        await tx.rollback()  # the job's write goes through, after the deletion
    home = client.app[keys.DATABASES].of_id(photo_id)
    async with asyncio.timeout(10):
        while await home.primary.pool.fetchval(
            "SELECT count(*) FROM jobs WHERE kind = $1 AND status <> 'done'", NOTIFY_JOB
        ):
            await asyncio.sleep(0.05)
    assert await _inbox(client, fan) == []


async def test_a_late_notification_of_a_comment_already_deleted_is_skipped(
    client: Client,
) -> None:
    """Applied after the action (a job or an event, picshare/notify.py), a
    notification whose comment is gone writes nothing, and the rest of its
    batch is still written: no retries into a dead letter."""
    await signup(client, "poster")
    await signup(client, "writer")
    owner = await _user_id(client, "poster")
    writer = await _user_id(client, "writer")
    gone = {"user_id": owner, "kind": "comment", "actor_id": writer, "text": "hi"}
    ops = [
        {"op": "add", **gone, "actor_username": "writer", "comment_id": 2**62},
        {"op": "add", **gone, "kind": "follow", "actor_username": "writer", "text": ""},
    ]
    async with client.app[keys.DATABASES].of_user(owner).transaction() as conn:
        written = [r for op in ops for r in await notify.apply(conn, op, late=True)]
    assert [r.kind for r in written] == ["follow"]

"""The NOTIFICATIONS table group in a database of its own
(`PICSHARE_DATABASE_GROUP_NOTIFICATIONS_URL`), a fresh empty one: every
event's notification is written there (by the `notify.apply` job the
action's transaction enqueued), read from there, pushed live once, and goes
when what it is about goes; nothing is written where the users live."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from storage import users_repo
from storage.table_groups import EVERY_DATABASE, TABLES
from tests import imaging
from tests.conftest import AiohttpClient, bearer, signup, upload_ready
from tests.groups_apart import empty_database, settings_apart
from tests.harness import PostgresForTests, tables_of

Client = TestClient[Any, Any]


@pytest.fixture
async def inbox_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    async with empty_database(postgres, "notifications") as url:
        yield url


@pytest.fixture
async def client(
    tmp_path: Path,
    database_url: str,
    inbox_url: str,
    media_pool: Any,
    aiohttp_client: AiohttpClient,
) -> Client:
    """An app whose notifications live in `inbox_url`."""
    settings = settings_apart(tmp_path / "data", database_url, "notifications", inbox_url)
    made: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return made


async def _kinds(client: Client, token: str, want: int) -> list[str]:
    """The inbox's kinds, newest first, once it holds `want` (written by a job)."""
    async with asyncio.timeout(10):
        while True:
            resp = await client.get("/api/v1/notifications", headers=bearer(token))
            assert resp.status == 200
            kinds = [n["kind"] for n in (await resp.json())["items"]]
            if len(kinds) >= want:
                return kinds
            await asyncio.sleep(0.05)


async def _settle(client: Client, token: str, want: list[str]) -> list[str]:
    """The inbox's kinds once they are `want` (a change is a job), else as they are."""
    kinds: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while (kinds := await _kinds(client, token, 0)) != want:
                await asyncio.sleep(0.05)
    return kinds


async def test_notifications_in_their_own_database(client: Client, inbox_url: str) -> None:
    shards = client.app[keys.DATABASES]
    assert shards.inbox is not None and shards.inbox not in shards.physical
    pushed: list[tuple[int, str]] = []

    async def listener(user_id: int, event: dict[str, Any]) -> None:
        pushed.append((user_id, event["kind"]))

    client.app[keys.BUS].subscribe(listener)

    star, fan = await signup(client, "star"), await signup(client, "fan")
    resp = await client.put("/api/v1/users/star/follow", headers=bearer(fan))
    assert resp.status in (200, 201), await resp.text()
    assert await _kinds(client, star, 1) == ["follow"]

    # A new photo: the follower is told (the ready job's fan-out, written
    # straight into the notifications' database).
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    assert await _kinds(client, fan, 1) == ["photo"]

    like = await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
    assert like.status == 200
    made = await client.post(
        f"/api/v1/photos/{photo['id']}/comments", json={"text": "lovely"}, headers=bearer(fan)
    )
    assert made.status == 201
    # Each written by its own job, which may run in either order.
    kinds = await _kinds(client, star, 3)
    assert sorted(kinds[:2]) == ["comment", "like"] and kinds[2:] == ["follow"], kinds

    # A deleted comment takes its notification along (no key can cascade
    # across databases).
    comment_id = (await made.json())["id"]
    gone = await client.delete(f"/api/v1/comments/{comment_id}", headers=bearer(fan))
    assert gone.status == 204
    assert await _settle(client, star, ["like", "follow"]) == ["like", "follow"]

    # A private account: the request, then its approval.
    hermit = await signup(client, "hermit")
    made_private = await client.patch("/api/v1/me", json={"private": True}, headers=bearer(hermit))
    assert made_private.status == 200, await made_private.text()
    asked = await client.put("/api/v1/users/hermit/follow", headers=bearer(fan))
    assert asked.status in (200, 201, 202), await asked.text()
    assert await _kinds(client, hermit, 1) == ["follow_request"]
    approved = await client.post("/api/v1/me/follow-requests/fan/approve", headers=bearer(hermit))
    assert approved.status in (200, 204), await approved.text()
    assert await _settle(client, hermit, ["follow"]) == ["follow"]

    # Each was pushed live once, after it was written; the approval's
    # notification is not pushed (its recipient made it).
    ids = {await _id(client, name): name for name in ("star", "fan", "hermit")}
    assert sorted((ids[u], k) for u, k in pushed) == sorted(
        [
            ("star", "follow"),
            ("fan", "photo"),
            ("star", "like"),
            ("star", "comment"),
            ("hermit", "follow_request"),
        ]
    )

    # The photo deleted: every notification about it goes, wherever it is.
    resp = await client.delete(f"/api/v1/photos/{photo['id']}", headers=bearer(star))
    assert resp.status == 204
    assert await _settle(client, star, ["follow"]) == ["follow"]
    assert await _settle(client, fan, []) == []

    # The group's tables and what every database has; no users, no photos.
    assert await tables_of(inbox_url) == TABLES["notifications"] | EVERY_DATABASE
    inbox = await asyncpg.connect(inbox_url)
    try:
        assert await inbox.fetchval("SELECT count(*) FROM notifications") == 2
    finally:
        await inbox.close()
    # Nothing was written where the users live (the suite's template has
    # its own, unused, notifications table).
    for db in shards.physical:
        async with db.read() as conn:
            assert await conn.fetchval("SELECT count(*) FROM notifications") == 0


async def _id(client: Client, username: str) -> int:
    resp = await client.get(f"/api/v1/users/{username}")
    return int((await resp.json())["id"])


async def test_a_rolled_back_action_leaves_no_notification_job(client: Client) -> None:
    star = await signup(client, "star")
    await signup(client, "fan")
    shards = client.app[keys.DATABASES]
    star_id, fan_id = await _id(client, "star"), await _id(client, "fan")
    home = shards.of_user(star_id)

    async with home.primary.pool.acquire() as conn:
        star_user = await users_repo.user_by_id(conn, star_id)
    async with shards.of_user(fan_id).primary.pool.acquire() as conn:
        fan_user = await users_repo.user_by_id(conn, fan_id)
    assert star_user is not None and fan_user is not None

    async def failing_follow() -> None:
        async with client.app[keys.NOTIFIER].transaction(home) as (_conn, notes):
            await notes.followed(star_user, fan_user)
            assert notes.deferred and not notes.written  # carried by a job, not written
            raise RuntimeError("the action failed after its notification was recorded")

    with pytest.raises(RuntimeError):
        await failing_follow()
    await asyncio.sleep(0.3)  # a job, had one been committed, would have run by now
    assert await _kinds(client, star, 0) == []
    async with home.read() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'notify.apply'") == 0

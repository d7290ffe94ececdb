"""Domain events with the default relay (picshare/outbox.py, picshare/relay_inprocess.py):
written in the change's transaction, one row per event with its own id, run
by each consumer as a durable job; a failing consumer is retried, then dead,
and `retry` replays it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from picshare.config import Settings
from picshare.consumers import Consumer, counters
from picshare.domain_events import EVENT_TYPES, PHOTO_LIKED, DomainEvent
from picshare.outbox_retention import prune
from picshare.relay_inprocess import InProcessRelay
from storage import outbox_repo
from tests.conftest import AiohttpClient, bearer, signup, upload_ready
from tests.servers import run_command

Client = TestClient[Any, Any]


async def _outbox(client: Client) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for db in client.app[keys.DATABASES].everything():
        rows += [
            dict(r)
            for r in await db.primary.pool.fetch(
                "SELECT id, type, data, sent_at, created_at FROM outbox"
            )
        ]
    return sorted(rows, key=lambda r: r["id"])


async def _processed(client: Client) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for db in client.app[keys.DATABASES].everything():
        rows += map(dict, await db.primary.pool.fetch("SELECT * FROM processed_events"))
    return rows


async def _counts(client: Client) -> dict[str, int]:
    async with client.app[keys.DATABASES].catalog.transaction() as conn:
        return await outbox_repo.event_counts(conn)


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def _key(token: str) -> dict[str, str]:
    return {**bearer(token), "Idempotency-Key": str(uuid.uuid4())}


async def test_every_event_is_written_once_with_its_change_and_counted(client: Client) -> None:
    star = await signup(client, "star")
    fan = await signup(client, "fan")
    assert (await client.put("/api/v1/users/star/follow", headers=bearer(fan))).status == 200
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    pid = photo["id"]
    await client.put(f"/api/v1/photos/{pid}/like", headers=bearer(fan))
    await client.put(f"/api/v1/photos/{pid}/like", headers=bearer(fan))  # a repeat: no event
    # The notification of the like is there right after it, as before.
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(star))).json()
    assert any(n["kind"] == "like" for n in inbox["items"])
    # The photo's consumers recorded the events they did, in their work's
    # transactions; photo.ready delivered again tells the follower nothing new.
    consumers = {r["consumer"] for r in await _processed(client)}
    assert {"renditions", "notifications"} <= consumers
    ready = next(r for r in await _outbox(client) if r["type"] == "photo.ready")
    event = DomainEvent(ready["id"], ready["type"], ready["data"], ready["created_at"])
    notifications = client.app[keys.NOTIFIER].consumer(client.app[keys.PHOTOS].on_ready)
    await notifications.handle(event)
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(fan))).json()
    assert [n["kind"] for n in inbox["items"]].count("photo") == 1
    await client.post(f"/api/v1/photos/{pid}/comments", json={"text": "hi"}, headers=bearer(fan))
    resp = await client.post("/api/v1/wallet/topup", json={"amount_cents": 500}, headers=_key(fan))
    assert resp.status in (200, 201)
    resp = await client.post(
        "/api/v1/payments/tips", json={"to": "star", "amount_cents": 100}, headers=_key(fan)
    )
    assert resp.status in (200, 201)
    resp = await client.patch("/api/v1/me", json={"private": True}, headers=bearer(star))
    assert resp.status == 200
    assert (await client.delete(f"/api/v1/photos/{pid}", headers=bearer(star))).status == 204

    rows = await _outbox(client)
    types = [r["type"] for r in rows]
    assert sorted(set(types)) == sorted(EVENT_TYPES)
    assert types.count(PHOTO_LIKED) == 1
    assert len({r["id"] for r in rows}) == len(rows)  # each event its own id
    assert all(r["sent_at"] is not None for r in rows)  # its jobs committed with it
    liked = next(r for r in rows if r["type"] == PHOTO_LIKED)
    assert liked["data"]["photo_id"] == pid and liked["data"]["user"]["username"] == "fan"

    # The counters consumer ran once per event, as a durable job.
    async def counted() -> bool:
        return sum((await _counts(client)).values()) == len(rows)

    await _until(counted)
    assert (await _counts(client))[PHOTO_LIKED] == 1


async def test_a_rolled_back_change_leaves_no_event(client: Client) -> None:
    await signup(client, "star")
    outbox = client.app[keys.OUTBOX]
    db = client.app[keys.DATABASES].catalog
    # The sign-up's own event (user.created) and its jobs were there before.
    before = [r["type"] for r in await _outbox(client)]
    async with db.transaction() as conn:
        jobs = await conn.fetchval("SELECT count(*) FROM jobs WHERE kind LIKE 'event:%'")
    with contextlib.suppress(RuntimeError):  # the change rolls back
        async with db.transaction() as conn:
            await outbox.photo_ready(conn, 12345)
            raise RuntimeError("the change fails after writing its event")
    outbox.committed()
    assert [r["type"] for r in await _outbox(client)] == before
    assert "photo.ready" not in before
    async with db.transaction() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE kind LIKE 'event:%'") == jobs


async def test_counters_consumer_ignores_a_redelivery(client: Client) -> None:
    assert isinstance(client.app[keys.RELAY], InProcessRelay)  # the default
    db = client.app[keys.DATABASES].catalog
    async with db.transaction() as conn:
        event = await client.app[keys.OUTBOX].photo_ready(conn, 1)
    client.app[keys.OUTBOX].committed()
    await _until(lambda: _settled(client))
    assert (await _counts(client))["photo.ready"] == 1
    consumer = counters(client.app[keys.DATABASES])
    await consumer.handle(event)  # delivered again: a lease that lapsed, a replay
    assert (await _counts(client))["photo.ready"] == 1


async def _settled(client: Client) -> bool:
    db = client.app[keys.DATABASES].catalog
    async with db.transaction() as conn:
        return not await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
        )


@pytest.fixture
async def quick_retries(
    settings: Settings, media_pool: ProcessPoolExecutor, aiohttp_client: AiohttpClient
) -> Client:
    fast = settings.replace(jobs={"backoff_base": 0.05, "max_attempts": 3})
    result: Client = await aiohttp_client(create_app(fast, media_pool=media_pool))
    return result


async def test_a_failing_consumer_is_retried_then_dead_then_replayed(
    quick_retries: Client, database_url: str
) -> None:
    client = quick_retries
    relay = client.app[keys.RELAY]
    calls: list[int] = []
    healthy = asyncio.Event()

    async def flaky(event: DomainEvent) -> None:
        calls.append(event.id)
        if not healthy.is_set():
            raise RuntimeError("the consumer's store is away")

    relay.register([Consumer("flaky", frozenset({PHOTO_LIKED}), flaky)])
    star, fan = await signup(client, "star"), await signup(client, "fan")
    photo = await upload_ready(client, star, imaging.jpeg_bytes(16, 16))
    await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
    attempts = client.app[keys.SETTINGS].jobs.max_attempts

    async def dead() -> bool:
        return len(await relay.dead()) == 1

    await _until(dead, timeout=20)
    [gone] = await relay.dead()
    assert gone.consumer == "flaky" and gone.event.type == PHOTO_LIKED
    assert gone.attempts == attempts and "store is away" in gone.error
    assert len(calls) == attempts

    listed = await asyncio.to_thread(run_command, ["events", "dead"], database_url)
    assert listed.returncode == 0, listed.stderr
    assert f"{gone.event.id}" in listed.stdout and "flaky" in listed.stdout

    healthy.set()
    assert await relay.retry(gone.event.id + 1) == 0  # no such dead event
    retried = await asyncio.to_thread(
        run_command, ["events", "retry", str(gone.event.id)], database_url
    )
    assert retried.returncode == 0 and "replayed 1" in retried.stdout, retried.stderr
    client.app[keys.JOBS].wake()

    async def replayed() -> bool:
        return len(calls) == attempts + 1 and not await relay.dead()

    await _until(replayed)


async def test_retention_forgets_old_sent_events_and_records_never_unsent_ones(
    client: Client,
) -> None:
    db = client.app[keys.DATABASES].catalog
    async with db.transaction() as conn:
        old_sent = await outbox_repo.add(conn, PHOTO_LIKED, {})
        old_unsent = await outbox_repo.add(conn, PHOTO_LIKED, {})
        fresh = await outbox_repo.add(conn, PHOTO_LIKED, {})
        await conn.execute(
            "UPDATE outbox SET created_at = now() - interval '8 days', "
            "sent_at = CASE WHEN id = $1 THEN now() END WHERE id = ANY($2::bigint[])",
            old_sent.id,
            [old_sent.id, old_unsent.id],
        )
        await outbox_repo.mark_sent(conn, [fresh.id])
        await outbox_repo.first_time(conn, "counters", old_sent.id)
        await outbox_repo.first_time(conn, "counters", fresh.id)
        await conn.execute(
            "UPDATE processed_events SET processed_at = now() - interval '8 days' "
            "WHERE event_id = $1",
            old_sent.id,
        )
    events, records = await prune(client.app[keys.DATABASES], retention_seconds=7 * 86400)
    assert (events, records) == (1, 1)
    async with db.transaction() as conn:
        left = {r["id"] for r in await conn.fetch("SELECT id FROM outbox")}
        assert old_unsent.id in left and fresh.id in left and old_sent.id not in left
        assert await outbox_repo.processed(conn, "counters", fresh.id)
        assert not await outbox_repo.processed(conn, "counters", old_sent.id)

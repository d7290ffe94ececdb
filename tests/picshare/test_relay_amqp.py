"""Domain events through RabbitMQ (picshare/relay_amqp.py), against the real
broker: publisher confirms before an outbox row is marked sent, consumers
from their own durable queues, idempotent by event id, retries with backoff,
dead letters that `retry` replays, a broker outage that users never see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aio_pika
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from picshare.config import Settings
from picshare.consumers import Consumer
from picshare.domain_events import PHOTO_LIKED, DomainEvent
from picshare.relay_amqp import AmqpRelay
from storage import outbox_repo
from storage.shards import Shards
from tests.amqp_harness import AMQP_URL, BrokerLink, amqp_exchange
from tests.conftest import AiohttpClient, bearer, signup, upload_ready
from tests.harness import database_env, missing_service

__all__ = ["amqp_exchange"]  # the fixture, used by name

Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parent.parent.parent


def _events(exchange: str, **more: Any) -> dict[str, Any]:
    return {
        "amqp_url": AMQP_URL,
        "exchange": exchange,
        "relay_interval": 0.2,
        "retry_base": 0.05,
        "max_attempts": 3,
        "timeout": 3.0,
        **more,
    }


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def _counts(db: Shards) -> dict[str, int]:
    async with db.catalog.transaction() as conn:
        return await outbox_repo.event_counts(conn)


async def _unsent(db: Shards) -> int:
    total = 0
    for part in db.everything():
        async with part.transaction() as conn:
            total += await outbox_repo.backlog(conn)
    return total


async def _broker_app(
    settings: Settings,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    events: dict[str, Any],
) -> Client:
    app = create_app(settings.replace(events=events), media_pool=media_pool)
    client: Client = await aiohttp_client(app)
    return client


async def test_events_go_through_the_broker_after_commit_and_once(
    settings: Settings,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    amqp_exchange: str,
) -> None:
    client = await _broker_app(settings, media_pool, aiohttp_client, _events(amqp_exchange))
    assert isinstance(client.app[keys.RELAY], AmqpRelay)
    db = client.app[keys.DATABASES]
    star, fan = await signup(client, "star"), await signup(client, "fan")
    # Rendered by the renditions consumer, from its RabbitMQ queue.
    photo = await upload_ready(client, star, imaging.jpeg_bytes(24, 24))
    await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))

    # A change that rolls back publishes nothing.
    with contextlib.suppress(RuntimeError):  # the change rolls back
        async with db.catalog.transaction() as conn:
            await client.app[keys.OUTBOX].photo_ready(conn, 42)
            raise RuntimeError("rolled back")

    async def relayed() -> bool:
        counts = await _counts(db)
        return await _unsent(db) == 0 and counts.get(PHOTO_LIKED) == 1

    await _until(relayed)
    counts = await _counts(db)
    assert counts == {"user.created": 2, "photo.uploaded": 1, "photo.ready": 1, PHOTO_LIKED: 1}

    # The same message delivered again (a relay that died between the
    # broker's confirm and its commit sends it twice): nothing changes.
    # The like's event is in the outbox of the photo's shard.
    async with db.of_id(int(photo["id"])).transaction() as conn:
        row = await conn.fetchrow(
            "SELECT id, type, data, created_at FROM outbox WHERE type = $1", PHOTO_LIKED
        )
    assert row is not None
    event = DomainEvent(row["id"], row["type"], row["data"], row["created_at"])
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        for _ in range(2):
            await channel.default_exchange.publish(
                aio_pika.Message(event.to_bytes(), message_id=str(event.id)),
                routing_key=f"{amqp_exchange}.counters",
            )
        queue = await channel.get_queue(f"{amqp_exchange}.counters")

        async def drained() -> bool:
            declared = await channel.declare_queue(queue.name, passive=True)
            return declared.declaration_result.message_count == 0

        await _until(drained)
    await asyncio.sleep(0.3)  # the consumer's last ack
    assert (await _counts(db))[PHOTO_LIKED] == 1


async def test_a_failing_consumer_retries_then_dead_letters_and_retry_replays(
    client: Client, amqp_exchange: str
) -> None:
    """Its own relay, beside the test app's default one (whose outbox rows are
    sent in-process: this event is written straight into the outbox)."""
    db = client.app[keys.DATABASES]
    calls: list[int] = []
    healthy = asyncio.Event()

    async def flaky(event: DomainEvent) -> None:
        calls.append(event.id)
        if not healthy.is_set():
            raise RuntimeError("the consumer's store is away")

    settings = client.app[keys.SETTINGS].replace(events=_events(amqp_exchange))
    relay = AmqpRelay(db=db, settings=settings.events, names=[], run_here=["flaky"])
    relay.register([Consumer("flaky", frozenset({PHOTO_LIKED}), flaky)])
    await relay.start()
    try:
        async with db.catalog.transaction() as conn:
            row = await outbox_repo.add(conn, PHOTO_LIKED, {"photo_id": "1"})
        relay.wake()

        async def dead() -> bool:
            return len(await relay.dead()) == 1

        await _until(dead)
        [gone] = await relay.dead()
        assert (gone.consumer, gone.event.id, gone.attempts) == ("flaky", row.id, 3)
        assert "store is away" in gone.error
        assert calls == [row.id] * 3  # the first delivery and two retries

        healthy.set()
        assert await relay.retry(row.id + 1) == 0
        assert await relay.retry(None) == 1

        async def replayed() -> bool:
            return len(calls) == 4 and not await relay.dead()

        await _until(replayed)
    finally:
        await relay.close()


async def test_broker_away_requests_succeed_and_the_outbox_drains_later(
    settings: Settings,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    amqp_exchange: str,
) -> None:
    link = BrokerLink()  # down: the app starts while the broker is away
    client = await _broker_app(
        settings, media_pool, aiohttp_client, _events(amqp_exchange, amqp_url=link.url)
    )
    db = client.app[keys.DATABASES]
    await signup(client, "star")
    fan = await signup(client, "fan")
    resp = await client.put("/api/v1/users/star/follow", headers=bearer(fan))
    assert resp.status == 200
    assert await _unsent(db) == 3  # the two sign-ups' user.created, the follow
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200 and body["checks"]["events"].startswith("failing")
    metrics = await (await client.get("/metrics")).text()
    assert "picshare_outbox_backlog 3.0" in metrics

    async def counted(event_type: str) -> bool:
        return await _unsent(db) == 0 and (await _counts(db)).get(event_type) == 1

    try:
        # The broker is back: the app's relay reconnects and the backlog goes out.
        await link.up()
        await _until(lambda: counted("user.followed"), timeout=20)
        assert (await (await client.get("/readyz")).json())["checks"]["events"] == "ok"

        # Away again while connected: the next change still succeeds, and waits.
        await link.down()
        nova = await signup(client, "nova")
        resp = await client.put("/api/v1/users/fan/follow", headers=bearer(nova))
        assert resp.status == 200
        await asyncio.sleep(0.5)
        assert await _unsent(db) == 2  # nova's user.created, the follow
        await link.up()

        async def both() -> bool:
            return await _unsent(db) == 0 and (await _counts(db)).get("user.followed") == 2

        await _until(both, timeout=20)
    finally:
        await link.down()


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_worker_consumes_while_the_web_process_runs_none(
    settings: Settings,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    amqp_exchange: str,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICSHARE_")}
    env = {
        **base,
        **database_env(database_url),
        "PICSHARE_DATA_DIR": str(tmp_path / "worker"),
        "PICSHARE_SECRET_KEY": "test-secret-key-0123456789",
        "PICSHARE_AMQP_URL": AMQP_URL,
        "PICSHARE_EVENTS_EXCHANGE": amqp_exchange,
    }
    # A worker needs the site's Redis: without it, it says so and stops.
    refused = await asyncio.to_thread(_run, ["worker", "--consumers", "counters"], env)
    assert refused.returncode == 2 and "PICSHARE_REDIS_URL" in refused.stderr
    env["PICSHARE_REDIS_URL"] = redis_url

    client = await _broker_app(
        settings, media_pool, aiohttp_client, _events(amqp_exchange, consumers="none")
    )
    db = client.app[keys.DATABASES]
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "worker", "--consumers", "counters"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await signup(client, "star")
        fan = await signup(client, "fan")
        await client.put("/api/v1/users/star/follow", headers=bearer(fan))

        async def counted() -> bool:
            return (await _counts(db)).get("user.followed") == 1

        await _until(counted, timeout=30)

        # A dead letter of the counters consumer: listed, then replayed by the commands.
        event_id = int(uuid.uuid4().int % 10**15)
        dead = DomainEvent.from_json(
            {
                "id": event_id,
                "type": PHOTO_LIKED,
                "timestamp": "2026-01-01T00:00:00+00:00",
                "data": {},
            }
        )
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(
                    dead.to_bytes(),
                    message_id=str(event_id),
                    headers={"x-picshare-attempts": 3, "x-picshare-error": "boom"},
                ),
                routing_key=f"{amqp_exchange}.counters.dead",
            )
        listed = await asyncio.to_thread(_run, ["events", "dead"], env)
        assert listed.returncode == 0, listed.stderr
        assert str(event_id) in listed.stdout and "boom" in listed.stdout
        retried = await asyncio.to_thread(_run, ["events", "retry", str(event_id)], env)
        assert retried.returncode == 0 and "replayed 1" in retried.stdout

        async def replayed() -> bool:
            return (await _counts(db)).get(PHOTO_LIKED) == 1

        await _until(replayed, timeout=30)
        listed = await asyncio.to_thread(_run, ["events", "dead"], env)
        assert str(event_id) not in listed.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        finally:
            log.close()
    assert worker.returncode == 0


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def test_a_broker_restarted_mid_stream_loses_nothing(
    settings: Settings,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    amqp_exchange: str,
) -> None:
    """The machine's RabbitMQ itself stopped and started (`rabbitmqctl
    stop_app` / `start_app`: its AMQP listener and every connection go, its
    durable queues and persistent messages stay) while changes keep coming:
    every event is counted once."""
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        missing_service("restarting the broker needs rabbitmqctl, as root")
    client = await _broker_app(settings, media_pool, aiohttp_client, _events(amqp_exchange))
    db = client.app[keys.DATABASES]
    await signup(client, "star")
    fans = [await signup(client, f"fan{i}") for i in range(6)]

    async def follow(fan: str) -> None:
        resp = await client.put("/api/v1/users/star/follow", headers=bearer(fan))
        assert resp.status == 200  # the broker's state is never the user's problem

    for fan in fans[:2]:
        await follow(fan)
    stopped = False
    try:
        await asyncio.to_thread(_rabbitmqctl, "stop_app")
        stopped = True
        for fan in fans[2:4]:
            await follow(fan)  # written to the outbox while the broker is down
        await asyncio.to_thread(_rabbitmqctl, "start_app")
        stopped = False
        for fan in fans[4:]:
            await follow(fan)
    finally:
        if stopped:
            await asyncio.to_thread(_rabbitmqctl, "start_app")

    async def all_counted() -> bool:
        return await _unsent(db) == 0 and (await _counts(db)).get("user.followed") == len(fans)

    await _until(all_counted, timeout=60)
    await asyncio.sleep(1)  # and no redelivery counts one twice
    assert (await _counts(db)).get("user.followed") == len(fans)

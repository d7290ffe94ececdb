"""Domain events through RabbitMQ, and webhook deliveries, between real processes.

A `run.py serve` web process that runs no consumers (PICSHARE_EVENTS_CONSUMERS=none)
relays the outbox to RabbitMQ (PICSHARE_AMQP_URL, default the machine's
127.0.0.1:5672) on a fresh database of the machine's PostgreSQL; `run.py
worker` processes consume. Three figures:

- events per second, outbox -> RabbitMQ -> consumer: N events written into the
  outbox in one statement, timed until the `counters` consumer (one
  `run.py worker --consumers counters`) has committed the last of them;
- a burst of 100 uploads to `ready` with 1 and then 2 `run.py worker
  --consumers renditions` processes (each with one media worker, so the
  workers are what scales): the time from the burst's start until every photo
  is ready, and each photo's time from its 201 to `ready`;
- webhook deliveries per second to a receiver on 127.0.0.1 (in this process):
  N `user.followed` events for one user with one endpoint, timed until the
  receiver has had them all (the `webhooks` consumer in a worker, the
  delivery jobs run by both processes' job runners).
Redis (a worker needs the site's): PICSHARE_BENCH_REDIS_URL, default DB 11.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
from aiohttp import web

from bench._common import (
    PYTHON,
    ROOT,
    Options,
    Row,
    fresh_database,
    percentile,
    photo_like,
    picshare_server,
    say,
    signup,
    wait_quiet,
)
from picshare.consumers import CONSUMER_NAMES

REDIS_URL = os.environ.get("PICSHARE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
AMQP_URL = os.environ.get("PICSHARE_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
BURST = 100
UPLOAD_CONCURRENCY = 8


@contextlib.contextmanager
def _worker(env: dict[str, str], consumers: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `run.py worker` process, stopped (SIGTERM, then killed) afterwards."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [PYTHON, str(ROOT / "run.py"), "worker", "--consumers", consumers],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f} s")
        await asyncio.sleep(0.02)


async def _insert_events(conn: asyncpg.Connection, n: int, followee_id: int) -> None:
    """N events as the outbox holds them (picshare/outbox.py writes one per change)."""
    await conn.execute(
        "INSERT INTO outbox (type, data) SELECT 'user.followed', jsonb_build_object("
        "'follower_id', (1000000 + g)::text, 'followee_id', $2::text) "
        "FROM generate_series(1, $1) AS g",
        n,
        str(followee_id),
    )


async def _counted(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(count), 0) FROM event_counts"))


async def _events_per_second(
    conn: asyncpg.Connection, env: dict[str, str], logs: Path, n: int
) -> list[Row]:
    with _worker(env, "counters", logs / "worker-counters.log"):
        await _insert_events(conn, 1, 1)  # warm: the worker is up and consuming

        async def warm() -> bool:
            return await _counted(conn) >= 1

        await _until(warm, 120, "the counters worker")
        before = await _counted(conn)
        await wait_quiet(max_wait=5)
        started = time.perf_counter()
        await _insert_events(conn, n, 1)

        async def all_counted() -> bool:
            return await _counted(conn) >= before + n

        await _until(all_counted, 120, "events through RabbitMQ")
        seconds = time.perf_counter() - started
    say(f"  {n} events in {seconds:.2f} s")
    return [(f"events/s, outbox -> RabbitMQ -> counters ({n})", f"{n / seconds:,.0f}")]


def _jpeg(size: tuple[int, int], seed: int) -> bytes:
    out = io.BytesIO()
    photo_like(size, seed).save(out, format="JPEG", quality=90)
    return out.getvalue()


async def _upload(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], data: bytes
) -> tuple[int, float]:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="burst.jpg", content_type="image/jpeg")
    async with session.post(f"{base}/api/v1/upload", data=form, headers=headers) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"upload answered {resp.status}: {body}")
    return int(body["id"]), time.perf_counter()


async def _burst(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    conn: asyncpg.Connection,
    files: list[bytes],
    count: int,
) -> tuple[float, list[float]]:
    """Upload `count` photos at once (a few at a time); the seconds until all
    are ready, and each one's seconds from its 201 to ready."""
    answered: dict[int, float] = {}
    ready: dict[int, float] = {}
    gate = asyncio.Semaphore(UPLOAD_CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            photo_id, at = await _upload(session, base, headers, files[i % len(files)])
            answered[photo_id] = at

    started = time.perf_counter()
    uploads = asyncio.gather(*(one(i) for i in range(count)))
    deadline = started + 180
    while len(ready) < count:
        ids = [i for i in answered if i not in ready]
        if ids:
            rows = await conn.fetch(
                "SELECT id, status FROM photos WHERE id = ANY($1::bigint[]) "
                "AND status <> 'processing'",
                ids,
            )
            now = time.perf_counter()
            for row in rows:
                if row["status"] != "ready":
                    raise RuntimeError(f"photo {row['id']} became {row['status']}")
                ready[row["id"]] = now
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {len(ready)} of {count} photos ready after 180 s")
        await asyncio.sleep(0.02)
    await uploads
    return max(ready.values()) - started, [ready[i] - answered[i] for i in ready]


async def _uploads_to_ready(
    base: str, conn: asyncpg.Connection, env: dict[str, str], logs: Path, quick: bool
) -> list[Row]:
    size = (800, 600) if quick else (1600, 1200)
    count = BURST // 4 if quick else BURST
    files = [await asyncio.to_thread(_jpeg, size, seed) for seed in range(8)]
    worker_env = {**env, "PICSHARE_MEDIA_WORKERS": "1"}
    rows: list[Row] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        headers = {"Authorization": f"Bearer {await signup(session, base, 'uploader')}"}
        for workers in (1, 2):
            with contextlib.ExitStack() as stack:
                for i in range(workers):
                    stack.enter_context(
                        _worker(worker_env, "renditions", logs / f"worker-render-{workers}-{i}.log")
                    )
                # Warm: every worker up (one photo each), before the clock starts.
                await _burst(session, base, headers, conn, files, workers)
                await wait_quiet(max_wait=5)
                total, each = await _burst(session, base, headers, conn, files, count)
            say(
                f"  {workers} worker(s): {count} uploads ready in {total:.1f} s, "
                f"201 -> ready median {statistics.median(each):.2f} s"
            )
            label = f"{count} uploads ({size[0]}x{size[1]}), {workers} worker(s)"
            rows += [
                (f"{label}: all ready", f"{total:.1f} s"),
                (
                    f"{label}: 201 -> ready median / p95",
                    f"{statistics.median(each):.2f} / {percentile(each, 95):.2f} s",
                ),
            ]
    return rows


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[tuple[str, list[float]]]:
    """A webhook receiver on 127.0.0.1: its URL and the times of what it got."""
    got: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        got.append(time.perf_counter())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", got
    finally:
        await runner.cleanup()


async def _webhooks_per_second(
    base: str, conn: asyncpg.Connection, env: dict[str, str], logs: Path, exchange: str, n: int
) -> list[Row]:
    # The events of the first part wait in the webhooks queue: not part of this figure.
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{exchange}.webhooks")
        await queue.purge()
    async with _receiver() as (url, got), aiohttp.ClientSession() as session:
        token = await signup(session, base, "hooked")
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{base}/api/v1/me", headers=headers) as resp:
            user_id = int((await resp.json())["id"])
        body = {"url": url, "events": ["user.followed"]}
        async with session.post(f"{base}/api/v1/webhooks", json=body, headers=headers) as resp:
            if resp.status != 201:
                raise RuntimeError(f"registering answered {resp.status}: {await resp.text()}")
        with _worker(env, "webhooks", logs / "worker-webhooks.log"):
            await _insert_events(conn, 1, user_id)

            async def warm() -> bool:
                return len(got) >= 1

            await _until(warm, 120, "the webhooks worker")
            await wait_quiet(max_wait=5)
            started = time.perf_counter()
            await _insert_events(conn, n, user_id)

            async def delivered() -> bool:
                return len(got) >= n + 1

            await _until(delivered, 120, "webhook deliveries")
            seconds = got[-1] - started
    say(f"  {n} webhooks delivered in {seconds:.2f} s")
    return [(f"webhook deliveries/s to 127.0.0.1 ({n})", f"{n / seconds:,.0f}")]


async def _delete_queues(exchange: str) -> None:
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection:
            channel = await connection.channel()
            for consumer in CONSUMER_NAMES:
                for suffix in ("", ".retry", ".dead"):
                    await channel.queue_delete(f"{exchange}.{consumer}{suffix}")
            await channel.exchange_delete(exchange)


async def run(opts: Options) -> list[Row]:
    try:
        await (await aio_pika.connect(AMQP_URL, timeout=5)).close()
    except Exception as exc:
        raise RuntimeError(f"no RabbitMQ at {AMQP_URL}: {exc}") from exc
    n_events = 1000 if opts.quick else 3000
    n_hooks = 200 if opts.quick else 1000
    exchange = f"picshare-bench-{uuid.uuid4().hex[:8]}"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        logs = Path(tmp)
        async with fresh_database(logs) as dsn:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("PICSHARE_")},
                "PICSHARE_DATABASE_URL": dsn,
                "PICSHARE_REDIS_URL": REDIS_URL,
                "PICSHARE_AMQP_URL": AMQP_URL,
                "PICSHARE_EVENTS_EXCHANGE": exchange,
                "PICSHARE_EVENTS_RELAY_INTERVAL": "0.2",
                "PICSHARE_EVENTS_CONSUMERS": "none",
                "PICSHARE_SECRET_KEY": "bench-secret-key-0123456789",
                "PICSHARE_DATA_DIR": str(logs / "data"),
                "PICSHARE_WEBHOOKS_ALLOW_LOOPBACK": "true",
                **{k: v for k, v in os.environ.items() if k.startswith("PICSHARE_RATELIMIT_")},
            }
            server, base = picshare_server(logs / "data", env=env)
            try:
                async with server:
                    conn = await asyncpg.connect(dsn, timeout=10)
                    try:
                        rows += await _events_per_second(conn, env, logs, n_events)
                        rows += await _uploads_to_ready(base, conn, env, logs, opts.quick)
                        rows += await _webhooks_per_second(base, conn, env, logs, exchange, n_hooks)
                    finally:
                        await conn.close()
            finally:
                await _delete_queues(exchange)
    return rows

"""The cache component alone: get_or_compute operations per second, hit and miss,
in memory and in Redis, one caller at a time and 64 at once; a stampede of
1,000 callers over two Redis clients; reads while Redis refuses connections.
Hits read 1,000 warm keys in turn; "one hot key" has every caller read the
same one, where callers in one process share each lookup.

The value is a photo detail of about 1 KB of JSON, computed instantly, so a
miss costs only the cache's own work (in Redis: GET, lease script, store
script). Redis: PICSHARE_BENCH_REDIS_URL, else the machine's service at
127.0.0.1:6379 (database 10, as the tests empty 9; keys under a prefix of
this run, removed after), else a `redis-server` started here. Each figure
runs for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench._common import Options, Row, free_port, say, wait_quiet
from picshare.metrics import Metrics
from storage.cache import Cache, MemoryCache, RedisCache

CONCURRENCY = 64
WARM_KEYS = 1000
PHOTO: dict[str, Any] = {
    "id": "7241950236471296001",
    "owner": {"id": "7241950236471290000", "username": "alice", "avatar": None},
    "caption": "Sunset over the harbour, shot from the old lighthouse " * 2,
    "tags": ["sunset", "harbour", "lighthouse", "travel"],
    "width": 4032,
    "height": 3024,
    "blurhash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH",
    "renditions": {
        size: {"url": f"/media/r/{'ab' * 32}.jpg?exp=1767225600&sig={'cd' * 16}", "width": w}
        for size, w in (("large", 1080), ("medium", 640), ("thumb", 150))
    },
    "like_count": 1234,
    "comment_count": 56,
    "liked": False,
    "created_at": "2025-06-01T18:42:07.123456+00:00",
}


async def _compute() -> dict[str, Any]:
    return PHOTO


async def _rate(op: Callable[[int], Awaitable[object]], seconds: float, tasks: int = 1) -> float:
    """Operations per second of `op(i)` (i counts up) run by `tasks` tasks for `seconds`."""
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            await op(counter)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return counter / (time.perf_counter() - started)


def _ops(rate: float, tasks: int = 1) -> str:
    if tasks > 1 or not rate:
        return f"{rate:,.0f} ops/s"
    return f"{rate:,.0f} ops/s ({1e6 / rate:,.1f} µs each)"


async def _measure(label: str, cache: Cache, seconds: float, tasks: int = 1) -> list[Row]:
    run = uuid.uuid4().hex[:6]
    warm = [f"{run}:warm:{i}" for i in range(WARM_KEYS)]
    for key in warm:
        await cache.get_or_compute(key, _compute, ttl=300)

    async def hit(i: int) -> object:
        # Many keys: callers of one key would share one lookup (measured apart).
        return await cache.get_or_compute(warm[i % WARM_KEYS], _compute, ttl=300)

    async def hot(_: int) -> object:
        return await cache.get_or_compute(warm[0], _compute, ttl=300)

    async def miss(i: int) -> object:
        return await cache.get_or_compute(f"{run}:{i}", _compute, ttl=60)

    who = "1 caller" if tasks == 1 else f"{tasks} callers"
    rows = [(f"{label} hit, {who}", _ops(await _rate(hit, seconds, tasks), tasks))]
    if tasks > 1:
        hot_rate = await _rate(hot, seconds, tasks)
        rows.append((f"{label} hit, {who}, one hot key", _ops(hot_rate, tasks)))
    rows.append((f"{label} miss, {who}", _ops(await _rate(miss, seconds, tasks), tasks)))
    return rows


async def _reachable(url: str) -> bool:
    client = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()
    return True


@contextlib.asynccontextmanager
async def _redis_url() -> AsyncIterator[str | None]:
    url = os.environ.get("PICSHARE_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/10"
    if await _reachable(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="picshare-bench-redis-") as folder:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", folder]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            own = f"redis://127.0.0.1:{port}/0"
            for _ in range(100):
                if await _reachable(own):
                    break
                await asyncio.sleep(0.05)
            say("  using a redis-server started for this benchmark")
            yield own
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)


def _client(url: str) -> Redis:
    # As the app makes it (picshare.app._redis).
    return Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


async def _stampede(url: str, prefix: str) -> Row:
    a, b = _client(url), _client(url)
    try:
        metrics = Metrics()
        caches = [RedisCache(c, name="bench", prefix=prefix, metrics=metrics) for c in (a, b)]
        computes = 0

        async def slow() -> dict[str, Any]:
            nonlocal computes
            computes += 1
            await asyncio.sleep(0.02)  # a database query
            return PHOTO

        started = time.perf_counter()
        await asyncio.gather(
            *(c.get_or_compute("stampede", slow, ttl=60) for _ in range(500) for c in caches)
        )
        ms = (time.perf_counter() - started) * 1000
        return (
            "stampede: 1,000 callers, 2 clients, 20 ms compute",
            f"{computes} compute(s), {ms:.0f} ms",
        )
    finally:
        await a.aclose()
        await b.aclose()


async def _down(seconds: float) -> Row:
    client = _client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        metrics = Metrics()
        cache = RedisCache(client, name="bench", metrics=metrics)

        async def op(_: int) -> object:
            return await cache.get_or_compute("k", _compute, ttl=60)

        rate = await _rate(op, seconds)
        value = metrics.registry.get_sample_value("picshare_cache_errors_total") or 0
        return (
            "Redis refusing connections, 1 caller",
            f"{_ops(rate)}, {value:.0f} error(s) counted",
        )
    finally:
        await client.aclose()


async def run(opts: Options) -> list[Row]:
    seconds = 0.3 if opts.quick else 2.0
    await wait_quiet(max_wait=5 if opts.quick else 30)
    rows: list[Row] = []
    metrics = Metrics()
    memory = MemoryCache(name="bench", max_entries=100_000, metrics=metrics)
    rows += await _measure("memory", memory, seconds)
    rows += await _measure("memory", memory, seconds, tasks=CONCURRENCY)
    async with _redis_url() as url:
        if url is None:
            rows.append(("redis", "skipped: no Redis reachable and no redis-server installed"))
            return rows
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        client = _client(url)
        try:
            cache = RedisCache(client, name="bench", prefix=prefix, metrics=metrics)
            rows += await _measure("redis", cache, seconds)
            rows += await _measure("redis", cache, seconds, tasks=CONCURRENCY)
            rows.append(await _stampede(url, prefix))
            rows.append(await _down(seconds))
        finally:
            batch: list[bytes | str] = []
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    await client.delete(*batch)
                    batch.clear()
            if batch:
                await client.delete(*batch)
            await client.aclose()
    return rows

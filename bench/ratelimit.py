"""Rate limiter decisions per second: in this process, and in Redis (the Lua
script over one client's connection pool).

Each figure is a fixed-length run (2 s; `--quick`: 0.3 s) of one task calling
`hit` in a loop, then of 32 tasks doing so at once, on 1,000 keys in turn (so
the in-process dict holds that many). Redis is PICSHARE_BENCH_REDIS_URL, else
127.0.0.1:6379 when it answers, else a `redis-server` started here on a free
port; the keys written carry their own prefix and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench._common import Options, Row, free_port, say
from picshare.ratelimit import MemoryLimiter, Policy, RateLimiter, RedisLimiter

SERVICE_URL = os.environ.get("PICSHARE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = "picshare:bench:rl:"
KEYS = [f"user:{i}" for i in range(1000)]
# Large enough that nearly every decision is an "allowed" one that writes.
POLICY = Policy("bench", quota=1_000_000, window=1)
CONCURRENCY = 32


async def run(opts: Options) -> list[Row]:
    seconds = 0.3 if opts.quick else 2.0
    rows: list[Row] = []
    async with asyncio.timeout(120):
        memory = MemoryLimiter()
        rows += await _measure("in-process", memory, seconds)
        async with _redis() as client:
            limiter = RedisLimiter(client, timeout=2.0, prefix=PREFIX)
            rows += await _measure("Redis", limiter, seconds)
            latencies = await _latencies(limiter, 200 if opts.quick else 2000)
            rows.append(("Redis, 1 task: latency p50", f"{latencies[0]:.0f} µs"))
            rows.append(("Redis, 1 task: latency p99", f"{latencies[1]:.0f} µs"))
            await _delete_keys(client)
    return rows


async def _measure(label: str, limiter: RateLimiter, seconds: float) -> list[Row]:
    rows: list[Row] = []
    for tasks in (1, CONCURRENCY):
        count = await _run_for(limiter, seconds, tasks)
        rate = count / seconds
        say(f"  {label}, {tasks} task(s): {rate:,.0f} decisions/s")
        name = f"{label}, {tasks} task{'s' if tasks > 1 else ''}"
        rows.append((name, f"{rate:,.0f} decisions/s"))
    return rows


async def _run_for(limiter: RateLimiter, seconds: float, tasks: int) -> int:
    deadline = time.perf_counter() + seconds
    counts = [0] * tasks

    async def worker(n: int) -> None:
        i = n
        while time.perf_counter() < deadline:
            await limiter.hit(KEYS[i % len(KEYS)], POLICY)
            i += tasks
            counts[n] += 1
            if counts[n] % 64 == 0:
                # The in-process limiter never awaits anything real: let the
                # other tasks (and the deadline check) have the loop.
                await asyncio.sleep(0)

    await asyncio.gather(*(worker(n) for n in range(tasks)))
    return sum(counts)


async def _latencies(limiter: RateLimiter, n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await limiter.hit(KEYS[i % len(KEYS)], POLICY)
        samples.append((time.perf_counter() - started) * 1e6)
    cuts = statistics.quantiles(samples, n=100)
    return statistics.median(samples), cuts[98]


async def _delete_keys(client: Redis) -> None:
    names = [key async for key in client.scan_iter(match=f"{PREFIX}*", count=1000)]
    if names:
        await client.delete(*names)


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(SERVICE_URL, socket_timeout=2, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError):
        await client.aclose()
    else:
        say(f"  Redis: {SERVICE_URL}")
        try:
            yield client
        finally:
            await client.aclose()
        return
    async with _own_redis_server() as url:
        client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        try:
            yield client
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def _own_redis_server() -> AsyncIterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no Redis: set PICSHARE_BENCH_REDIS_URL or install redis-server")
    port = free_port()
    folder = tempfile.mkdtemp(prefix="picshare-bench-redis-")
    argv = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder]
    proc = await asyncio.create_subprocess_exec(
        binary, *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    say(f"  Redis: a redis-server of our own on port {port}")
    try:
        probe = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            for _ in range(100):
                with contextlib.suppress(RedisError, OSError):
                    await probe.ping()
                    break
                await asyncio.sleep(0.05)
        finally:
            await probe.aclose()
        yield url
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
        shutil.rmtree(folder, ignore_errors=True)

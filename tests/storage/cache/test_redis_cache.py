"""The Redis cache on a real Redis: two caches with their own clients stand for
two processes. Leases, generations, and a Redis that dies or hangs."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from picshare.metrics import Metrics
from storage.cache import Cache, RedisCache
from tests.harness import REQUIRE_SERVICES, missing_service
from tests.redis_harness import _free_port, _reachable
from tests.storage.cache.test_memory import Source, sample

MakeClient = Callable[..., Redis]


@pytest.fixture
async def make_client(redis_url: str) -> AsyncIterator[MakeClient]:
    """Redis clients like the app's; `url` points one elsewhere."""
    made: list[Redis] = []

    def make(url: str = redis_url, timeout: float = 0.5) -> Redis:
        client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A client to look at what the caches stored."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def errors(metrics: Metrics) -> float:
    return sample(metrics, "picshare_cache_errors_total")


async def test_miss_then_hit_across_processes(make_client: MakeClient) -> None:
    metrics = Metrics()
    a: Cache = RedisCache(make_client(), name="photos", metrics=metrics)
    b: Cache = RedisCache(make_client(), name="photos")
    source = Source()
    first = await a.get_or_compute("photo:1", source, ttl=60)
    second = await b.get_or_compute("photo:1", source, ttl=60)
    assert first == second == {"version": 1, "tags": ["a", "b"]}
    assert source.calls == 1
    assert sample(metrics, "picshare_cache_requests_total", cache="photos", result="miss") == 1
    assert sample(metrics, "picshare_cache_recomputes_total", cache="photos") == 1
    await a.get_or_compute("photo:1", source, ttl=60)
    assert sample(metrics, "picshare_cache_requests_total", cache="photos", result="hit") == 1


async def test_stored_under_prefix_with_jittered_ttl(make_client: MakeClient, raw: Redis) -> None:
    cache = RedisCache(make_client(), name="t", jitter=0.1)
    source = Source()
    for i in range(100):
        await cache.get_or_compute(f"k{i}", source, ttl=100)
    keys = await raw.keys("*")
    assert len(keys) == 100
    assert all(
        isinstance(k, str) and k.startswith("cache:t:k:k") for k in keys
    )  # no lease left behind
    ttls = [await raw.pttl(k) for k in keys]
    assert all(89_000 <= t <= 110_000 for t in ttls)
    assert max(ttls) - min(ttls) > 1000  # spread, not one expiry for all


async def test_ttl_expiry(make_client: MakeClient) -> None:
    cache = RedisCache(make_client(), name="t", jitter=0)
    source = Source()
    await cache.get_or_compute("k", source, ttl=0.15)
    await cache.get_or_compute("k", source, ttl=0.15)
    assert source.calls == 1
    await asyncio.sleep(0.25)
    await cache.get_or_compute("k", source, ttl=0.15)
    assert source.calls == 2


async def test_delete_in_one_process_invalidates_the_other(make_client: MakeClient) -> None:
    a = RedisCache(make_client(), name="t")
    b = RedisCache(make_client(), name="t")
    source = Source()
    await a.get_or_compute("x", source, ttl=60)
    await a.get_or_compute("y", source, ttl=60)
    source.version = 2
    await b.delete("x")
    await b.delete()
    assert (await a.get_or_compute("x", source, ttl=60))["version"] == 2
    assert (await a.get_or_compute("y", source, ttl=60))["version"] == 1


async def test_delete_revokes_the_lease_of_a_running_computation(
    make_client: MakeClient, raw: Redis
) -> None:
    a = RedisCache(make_client(), name="t")
    b = RedisCache(make_client(), name="t")
    source = Source(delay=0.1)
    reader = asyncio.create_task(a.get_or_compute("k", source, ttl=60))
    await asyncio.sleep(0.03)
    assert await raw.exists("cache:t:lease:k:k") == 1
    source.version = 2  # a write; the reader already read version 1
    await b.delete("k")
    assert (await reader)["version"] == 1
    # The stale value was not stored: the next reader reads the new one.
    assert await raw.exists("cache:t:k:k") == 0
    assert (await b.get_or_compute("k", source, ttl=60))["version"] == 2


async def test_bump_invalidates_a_namespace_everywhere(make_client: MakeClient) -> None:
    a = RedisCache(make_client(), name="feeds")
    b = RedisCache(make_client(), name="feeds")
    source = Source()
    for page in ("p1", "p2"):
        await a.get_or_compute(page, source, ttl=60, namespace="feed:1")
        await a.get_or_compute(page, source, ttl=60, namespace="feed:2")
    await a.get_or_compute("p1", source, ttl=60)
    assert source.calls == 5
    source.version = 2
    await b.bump("feed:1")
    for page in ("p1", "p2"):
        mine = await a.get_or_compute(page, source, ttl=60, namespace="feed:1")
        other = await a.get_or_compute(page, source, ttl=60, namespace="feed:2")
        assert (mine["version"], other["version"]) == (2, 1)
    assert (await a.get_or_compute("p1", source, ttl=60))["version"] == 1
    assert source.calls == 7


async def test_lost_generation_never_brings_back_old_entries(
    make_client: MakeClient, raw: Redis
) -> None:
    cache = RedisCache(make_client(), name="t")
    source = Source()
    await cache.get_or_compute("page", source, ttl=60, namespace="a")
    await cache.bump("a")
    source.version = 2
    assert (await cache.get_or_compute("page", source, ttl=60, namespace="a"))["version"] == 2
    # The generation is evicted (or expires) while version 1 is still stored.
    assert await raw.delete("cache:t:gen:a") == 1
    source.version = 3
    assert (await cache.get_or_compute("page", source, ttl=60, namespace="a"))["version"] == 3


async def test_stampede_across_two_processes_computes_once(make_client: MakeClient) -> None:
    metrics = Metrics()
    # Two hundred callers at once open many connections: a generous bound per
    # call, since this is about who computes, not about timeouts (0.5 s was
    # once exceeded on a busy machine, and that caller computed too).
    a = RedisCache(make_client(timeout=3.0), name="hot", metrics=metrics, timeout=3.0)
    b = RedisCache(make_client(timeout=3.0), name="hot", metrics=metrics, timeout=3.0)
    source = Source(delay=0.1)
    results = await asyncio.gather(
        *(cache.get_or_compute("cold", source, ttl=60) for _ in range(100) for cache in (a, b))
    )
    assert source.calls == 1
    assert len(results) == 200
    assert all(r == {"version": 1, "tags": ["a", "b"]} for r in results)
    assert sample(metrics, "picshare_cache_recomputes_total", cache="hot") == 1
    assert errors(metrics) == 0


async def test_stampede_under_a_namespace(make_client: MakeClient) -> None:
    a = RedisCache(make_client(timeout=3.0), name="feeds", timeout=3.0)
    b = RedisCache(make_client(timeout=3.0), name="feeds", timeout=3.0)
    source = Source(delay=0.05)
    await asyncio.gather(
        *(
            cache.get_or_compute("p1", source, ttl=60, namespace="feed:7")
            for _ in range(50)
            for cache in (a, b)
        )
    )
    assert source.calls == 1


async def test_bump_during_a_lookup_is_not_joined(make_client: MakeClient) -> None:
    cache = RedisCache(make_client(), name="feeds")
    source = Source(delay=0.3)
    before = asyncio.create_task(cache.get_or_compute("p1", source, ttl=60, namespace="feed:1"))
    # Once its read has begun (a fixed sleep lost that race on a loaded
    # machine: the read then saw the new post too); it stays in flight
    # for `delay`, long enough for the bump and the second lookup.
    async with asyncio.timeout(5):
        while source.calls == 0:
            await asyncio.sleep(0.001)
    source.version = 2  # a new post, then the bump
    await cache.bump("feed:1")
    after = await cache.get_or_compute("p1", source, ttl=60, namespace="feed:1")
    assert after["version"] == 2
    assert (await before)["version"] == 1
    assert source.calls == 2


async def test_full_connection_pool_is_counted_but_does_not_back_off(redis_url: str) -> None:
    client = Redis.from_url(redis_url, max_connections=1)
    metrics = Metrics()
    cache = RedisCache(client, name="t", metrics=metrics, backoff=60)
    source = Source()
    try:
        await cache.get_or_compute("warm", source, ttl=60)
        # Another user of the shared client holds its only connection.
        busy = asyncio.ensure_future(client.blpop(["nothing"], timeout=0.2))
        await asyncio.sleep(0.05)
        assert (await cache.get_or_compute("warm", source, ttl=60))["version"] == 1
        assert errors(metrics) == 1
        await busy
        await cache.get_or_compute("warm", source, ttl=60)
        assert sample(metrics, "picshare_cache_requests_total", cache="t", result="hit") == 1
    finally:
        await client.aclose()


async def test_compute_error_reaches_waiters_and_nothing_is_cached(
    make_client: MakeClient, raw: Redis
) -> None:
    cache = RedisCache(make_client(), name="t")
    source = Source(delay=0.02, error=LookupError("db down"))
    results = await asyncio.gather(
        *(cache.get_or_compute("k", source, ttl=60) for _ in range(100)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert source.calls == 1
    assert await raw.keys("*") == []  # no value, and the lease was given back
    source.error = None
    assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 1


async def test_other_process_takes_over_a_failed_computation(make_client: MakeClient) -> None:
    a = RedisCache(make_client(), name="t")
    b = RedisCache(make_client(), name="t")
    failing = Source(delay=0.05, error=LookupError("timeout"))
    working = Source()
    first = asyncio.create_task(a.get_or_compute("k", failing, ttl=60))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    # b waits on a's lease; a gives it back on failure instead of letting it expire.
    value = await b.get_or_compute("k", working, ttl=60)
    assert time.monotonic() - started < 1.0
    assert value["version"] == 1
    with pytest.raises(LookupError):
        await first


async def test_lease_of_a_dead_process_expires(make_client: MakeClient, raw: Redis) -> None:
    cache = RedisCache(make_client(), name="t", lease=0.3)
    await raw.set("cache:t:lease:k:k", "someone-else", px=300)
    source = Source()
    started = time.monotonic()
    assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 1
    assert 0.2 < time.monotonic() - started < 1.0
    assert source.calls == 1
    await cache.get_or_compute("k", source, ttl=60)
    assert source.calls == 1  # the taker stored it


async def test_waiting_is_bounded(make_client: MakeClient, raw: Redis) -> None:
    cache = RedisCache(make_client(), name="t", max_wait=0.2)
    await raw.set("cache:t:lease:k:k", "slow-holder", px=10_000)
    source = Source()
    started = time.monotonic()
    assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 1
    assert 0.15 < time.monotonic() - started < 0.6
    assert await raw.exists("cache:t:k:k") == 0  # the lease is not ours: not stored


async def test_redis_unreachable(make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    # Nothing listens there: every call fails at once.
    cache = RedisCache(
        make_client(f"redis://127.0.0.1:{_free_port()}/0"),
        name="t",
        metrics=metrics,
        backoff=0,
        timeout=0.2,
    )
    source = Source()
    with caplog.at_level(logging.WARNING, logger="storage.cache.redis_cache"):
        for _ in range(5):
            assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 1
        await cache.delete("k")
        await cache.bump("ns")
        assert (await cache.get_or_compute("k", source, ttl=60, namespace="ns"))["version"] == 1
    assert source.calls == 6
    assert errors(metrics) == 8
    assert len(caplog.records) == 1  # logged once per interval, not per error
    assert "serving from the source" in caplog.records[0].getMessage()


async def test_redis_unreachable_stampede_still_coalesces_here(make_client: MakeClient) -> None:
    cache = RedisCache(make_client(f"redis://127.0.0.1:{_free_port()}/0"), name="t", timeout=0.2)
    source = Source(delay=0.05)
    results = await asyncio.gather(*(cache.get_or_compute("k", source, ttl=60) for _ in range(50)))
    assert all(r["version"] == 1 for r in results)
    assert source.calls == 1


async def test_hung_redis_costs_one_timeout_per_backoff() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # reads commands, never answers
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=5)
    metrics = Metrics()
    cache = RedisCache(client, name="t", timeout=0.1, backoff=5.0, metrics=metrics)
    source = Source()
    try:
        started = time.monotonic()
        assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 1
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        for _ in range(20):  # within the backoff: Redis is not asked again
            await cache.get_or_compute("k", source, ttl=60)
        assert time.monotonic() - started < 0.1
        assert errors(metrics) == 1
        assert source.calls == 21
    finally:
        await client.aclose()
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@contextmanager
def own_redis(tmp_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is not installed")
        missing_service("redis-server is not installed")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if _reachable(f"redis://127.0.0.1:{port}/0"):
                break
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


async def test_redis_dies_mid_run_and_comes_back(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    metrics = Metrics()
    cache = RedisCache(
        make_client(f"redis://127.0.0.1:{port}/0"),
        name="t",
        metrics=metrics,
        timeout=0.3,
        backoff=0.2,
    )
    source = Source()
    with own_redis(tmp_path, port):
        await cache.get_or_compute("k", source, ttl=60)
        await cache.get_or_compute("k", source, ttl=60)
        assert source.calls == 1
    # Redis is gone: every request still gets its value, from the source.
    with caplog.at_level(logging.WARNING, logger="storage.cache.redis_cache"):
        values: list[dict[str, Any]] = []
        for _ in range(30):
            values.append(await cache.get_or_compute("k", source, ttl=60))
            await cache.delete("other")
    assert all(v["version"] == 1 for v in values)
    assert source.calls == 31
    assert errors(metrics) >= 31  # every delete tries Redis, and at least one read did
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    with own_redis(tmp_path, port):
        await asyncio.sleep(0.25)  # past the backoff
        await cache.get_or_compute("k", source, ttl=60)
        await cache.get_or_compute("k", source, ttl=60)
        assert source.calls == 32  # stored again, then a hit


def test_bad_options() -> None:
    client = Redis()
    with pytest.raises(ValueError, match="lease"):
        RedisCache(client, name="t", lease=0)
    with pytest.raises(ValueError, match="timeout"):
        RedisCache(client, name="t", timeout=0)


async def test_concurrent_hits_of_a_hot_key_share_one_get(
    make_client: MakeClient, tmp_path: Path
) -> None:
    port = _free_port()
    with own_redis(tmp_path, port):
        url = f"redis://127.0.0.1:{port}/0"
        metrics = Metrics()
        cache = RedisCache(make_client(url), name="t", metrics=metrics)
        source = Source()
        await cache.get_or_compute("hot", source, ttl=60)
        stats = make_client(url)
        await stats.config_resetstat()
        results = await asyncio.gather(
            *(cache.get_or_compute("hot", source, ttl=60) for _ in range(100))
        )
        assert len(results) == 100
        assert source.calls == 1
        info = await stats.info("commandstats")
        assert info["cmdstat_get"]["calls"] == 1
        assert sample(metrics, "picshare_cache_requests_total", cache="t", result="hit") == 100

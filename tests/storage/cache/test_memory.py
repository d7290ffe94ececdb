"""The in-process cache: hits, TTLs, invalidation, one computation per stampede, LRU bound."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from picshare.metrics import Metrics
from storage.cache import Cache, MemoryCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A stand-in for the database: counts reads, can be slow or fail."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error
        self.version = 1

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        version = self.version  # read now; the answer arrives after `delay`
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return {"version": version, "tags": ("a", "b")}


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_miss_then_hit_and_metrics() -> None:
    metrics = Metrics()
    cache: Cache = MemoryCache(name="photos", metrics=metrics)
    source = Source()
    first = await cache.get_or_compute("photo:1", source, ttl=60)
    second = await cache.get_or_compute("photo:1", source, ttl=60)
    # A miss gives what a hit will: the encoded value decoded (tuples become lists).
    assert first == second == {"version": 1, "tags": ["a", "b"]}
    assert source.calls == 1
    hit = {"cache": "photos", "result": "hit"}
    miss = {"cache": "photos", "result": "miss"}
    assert sample(metrics, "picshare_cache_requests_total", **hit) == 1
    assert sample(metrics, "picshare_cache_requests_total", **miss) == 1
    assert sample(metrics, "picshare_cache_recomputes_total", cache="photos") == 1
    assert b'picshare_cache_requests_total{cache="photos",result="hit"} 1.0' in metrics.render()


async def test_callers_get_copies() -> None:
    cache = MemoryCache(name="t")
    value = await cache.get_or_compute("k", Source(), ttl=60)
    value["version"] = 99
    assert (await cache.get_or_compute("k", Source(), ttl=60))["version"] == 1


async def test_custom_codec() -> None:
    cache = MemoryCache(name="t")

    async def compute() -> str:
        return "héllo"

    for _ in range(2):
        value = await cache.get_or_compute(
            "k", compute, ttl=60, encode=str.encode, decode=bytes.decode
        )
        assert value == "héllo"


async def test_unserializable_value_raises_and_is_not_cached() -> None:
    cache = MemoryCache(name="t")

    async def compute() -> object:
        return object()

    with pytest.raises(TypeError):
        await cache.get_or_compute("k", compute, ttl=60)
    assert len(cache) == 0


async def test_ttl_expiry_with_jitter_bounds() -> None:
    clock = Clock()
    cache = MemoryCache(name="t", clock=clock, jitter=0.1)
    source = Source()
    keys = [f"k{i}" for i in range(200)]
    for key in keys:
        await cache.get_or_compute(key, source, ttl=100)
    assert source.calls == 200

    async def recomputed_after(seconds: float) -> int:
        clock.now = 1000.0 + seconds
        before = source.calls
        for key in keys:
            await cache.get_or_compute(key, source, ttl=100)
        return source.calls - before

    assert await recomputed_after(89.9) == 0  # nothing expires before ttl - 10%
    # Around the TTL some have expired and some not: the expiries are spread.
    assert 0 < await recomputed_after(100) < 200


async def test_ttl_expires_after_ttl_plus_jitter() -> None:
    clock = Clock()
    cache = MemoryCache(name="t", clock=clock, jitter=0.1)
    source = Source()
    keys = [f"k{i}" for i in range(50)]
    for key in keys:
        await cache.get_or_compute(key, source, ttl=100)
    clock.now += 110.01
    for key in keys:
        await cache.get_or_compute(key, source, ttl=100)
    assert source.calls == 100


async def test_no_jitter_is_exact() -> None:
    clock = Clock()
    cache = MemoryCache(name="t", clock=clock, jitter=0)
    source = Source()
    await cache.get_or_compute("k", source, ttl=10)
    clock.now += 9.999
    await cache.get_or_compute("k", source, ttl=10)
    assert source.calls == 1
    clock.now += 0.001
    await cache.get_or_compute("k", source, ttl=10)
    assert source.calls == 2


async def test_delete_invalidates() -> None:
    cache = MemoryCache(name="t")
    source = Source()
    await cache.get_or_compute("a", source, ttl=60)
    await cache.get_or_compute("b", source, ttl=60)
    source.version = 2
    await cache.delete("a", "missing")
    assert (await cache.get_or_compute("a", source, ttl=60))["version"] == 2
    assert (await cache.get_or_compute("b", source, ttl=60))["version"] == 1


async def test_delete_during_compute_drops_the_old_value() -> None:
    cache = MemoryCache(name="t")
    source = Source(delay=0.05)
    reader = asyncio.create_task(cache.get_or_compute("k", source, ttl=60))
    await asyncio.sleep(0.01)
    # A write happens while the reader holds what it read before it.
    source.version = 2
    await cache.delete("k")
    # A caller after the delete does not join the stale computation...
    after = await cache.get_or_compute("k", source, ttl=60)
    assert after["version"] == 2
    assert (await reader)["version"] == 1
    # ...and the stale one was not stored over the fresh value.
    assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 2
    assert source.calls == 2


async def test_bump_invalidates_a_namespace_only() -> None:
    cache = MemoryCache(name="feeds")
    source = Source()
    for page in ("p1", "p2"):
        await cache.get_or_compute(page, source, ttl=60, namespace="feed:1")
        await cache.get_or_compute(page, source, ttl=60, namespace="feed:2")
    await cache.get_or_compute("p1", source, ttl=60)
    assert source.calls == 5
    source.version = 2
    await cache.bump("feed:1")
    for page in ("p1", "p2"):
        assert (await cache.get_or_compute(page, source, ttl=60, namespace="feed:1"))[
            "version"
        ] == 2
        assert (await cache.get_or_compute(page, source, ttl=60, namespace="feed:2"))[
            "version"
        ] == 1
    assert (await cache.get_or_compute("p1", source, ttl=60))["version"] == 1
    assert source.calls == 7


async def test_lost_generation_never_brings_back_old_entries() -> None:
    cache = MemoryCache(name="t", max_entries=3)
    source = Source()
    await cache.get_or_compute("page", source, ttl=60, namespace="a")  # version 1
    source.version = 2
    await cache.bump("a")
    assert (await cache.get_or_compute("page", source, ttl=60, namespace="a"))["version"] == 2
    for other in ("b", "c", "d"):  # pushes a's generation out of its LRU
        await cache.bump(other)
    source.version = 3
    assert (await cache.get_or_compute("page", source, ttl=60, namespace="a"))["version"] == 3


async def test_stampede_computes_once() -> None:
    metrics = Metrics()
    cache = MemoryCache(name="hot", metrics=metrics)
    source = Source(delay=0.05)
    results = await asyncio.gather(
        *(cache.get_or_compute("cold", source, ttl=60) for _ in range(100))
    )
    assert source.calls == 1
    assert all(r == results[0] for r in results)
    # Each caller got its own copy.
    assert len({id(r) for r in results}) == 100
    assert sample(metrics, "picshare_cache_requests_total", cache="hot", result="miss") == 100
    assert sample(metrics, "picshare_cache_recomputes_total", cache="hot") == 1


async def test_compute_error_reaches_every_waiter_and_nothing_is_cached() -> None:
    cache = MemoryCache(name="t")
    source = Source(delay=0.02, error=LookupError("db down"))
    results = await asyncio.gather(
        *(cache.get_or_compute("k", source, ttl=60) for _ in range(100)),
        return_exceptions=True,
    )
    assert source.calls == 1
    assert all(isinstance(r, LookupError) for r in results)
    assert len(cache) == 0
    source.error = None
    assert (await cache.get_or_compute("k", source, ttl=60))["version"] == 1
    assert source.calls == 2


async def test_cancelled_runner_does_not_fail_the_waiters() -> None:
    cache = MemoryCache(name="t")
    source = Source(delay=0.05)
    runner = asyncio.create_task(cache.get_or_compute("k", source, ttl=60))
    await asyncio.sleep(0.01)
    waiters = [asyncio.create_task(cache.get_or_compute("k", source, ttl=60)) for _ in range(10)]
    await asyncio.sleep(0.01)
    runner.cancel()
    results = await asyncio.gather(*waiters)
    assert all(r["version"] == 1 for r in results)
    assert runner.cancelled()
    assert source.calls == 2  # the cancelled run, then one waiter's


async def test_cancelled_waiter_does_not_cancel_the_others() -> None:
    cache = MemoryCache(name="t")
    source = Source(delay=0.05)
    first = asyncio.create_task(cache.get_or_compute("k", source, ttl=60))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cache.get_or_compute("k", source, ttl=60))
    await asyncio.sleep(0.01)
    waiter.cancel()
    assert (await first)["version"] == 1
    assert waiter.cancelled()
    assert source.calls == 1


async def test_lru_bound() -> None:
    cache = MemoryCache(name="t", max_entries=3)
    source = Source()
    for key in ("a", "b", "c"):
        await cache.get_or_compute(key, source, ttl=60)
    await cache.get_or_compute("a", source, ttl=60)  # a is now the most recent
    await cache.get_or_compute("d", source, ttl=60)  # pushes out b, the least recent
    assert len(cache) == 3
    assert source.calls == 4
    for key in ("a", "c", "d"):
        await cache.get_or_compute(key, source, ttl=60)
    assert source.calls == 4
    await cache.get_or_compute("b", source, ttl=60)
    assert source.calls == 5
    for i in range(1000):
        await cache.get_or_compute(f"x{i}", source, ttl=60)
    assert len(cache) == 3


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="name"):
        MemoryCache(name="")
    with pytest.raises(ValueError, match="jitter"):
        MemoryCache(name="t", jitter=1.5)
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(name="t", max_entries=0)


async def test_bad_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        await MemoryCache(name="t").get_or_compute("k", Source(), ttl=0)


async def test_peek_answers_a_hit_at_once_and_counts_it() -> None:
    metrics = Metrics()
    clock = Clock()
    cache = MemoryCache(name="photos", metrics=metrics, clock=clock)
    hit = {"cache": "photos", "result": "hit"}
    assert cache.peek("photo:1") is None  # a miss counts nothing: get_or_compute will
    assert sample(metrics, "picshare_cache_requests_total", **hit) == 0
    await cache.get_or_compute("photo:1", Source(), ttl=60)
    assert cache.peek("photo:1") == b'{"version":1,"tags":["a","b"]}'
    assert sample(metrics, "picshare_cache_requests_total", **hit) == 1
    await cache.get_or_compute("feed", Source(), ttl=60, namespace="n")
    assert cache.peek("feed") is None  # namespaced keys are not peeked
    await cache.delete("photo:1")
    assert cache.peek("photo:1") is None
    await cache.get_or_compute("photo:2", Source(), ttl=60)
    clock.now += 120
    assert cache.peek("photo:2") is None  # expired


async def test_peek_under_a_namespace_follows_its_bumps() -> None:
    cache = MemoryCache(name="pages")
    assert cache.peek("first:21", "public") is None  # no generation yet: none is made
    await cache.get_or_compute("first:21", Source(), ttl=60, namespace="public")
    assert cache.peek("first:21", "public") == b'{"version":1,"tags":["a","b"]}'
    assert cache.peek("first:21") is None  # not under the namespace
    await cache.bump("public")
    assert cache.peek("first:21", "public") is None

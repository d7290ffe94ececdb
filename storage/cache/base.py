"""The cache interface, and what its implementations share: keys, TTL jitter, counters.

`get_or_compute` is cache-aside with stampede protection: on a miss only one
caller runs `compute` (per process in memory, across processes in Redis) and
the others wait for its value. Values go through `encode`/`decode` (orjson by
default) even in memory, so a caller always gets a fresh copy it may mutate,
and a miss returns exactly what a later hit will (a tuple comes back as a
list, a datetime as its ISO string), whichever implementation is behind.

Invalidation:
- a key that stands alone is invalidated with `delete(key)`;
- keys that must go together (all feed pages of one viewer) are read under a
  `namespace`, and `bump(namespace)` invalidates them all at once. Each
  namespace has a generation folded into the stored key, so a bump is one
  write and needs no scan; entries of old generations are never read again
  and fall off by TTL (or LRU). A key lives either under one namespace or
  under none: `delete(key)` does not reach keys read with a namespace.

A change in the shape of cached values (a new serializer) needs a new cache
name or prefix, or old entries are decoded as the new shape until they expire.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from storage.scope import cache_lookup

T = TypeVar("T")


class Cache(Protocol):
    """A cache of encoded values; every method is safe to call concurrently."""

    @property
    def name(self) -> str:
        """Used as the `cache` label of the metrics."""
        ...

    async def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl: float,
        namespace: str | None = None,
        encode: Callable[[T], bytes] = ...,
        decode: Callable[[bytes], T] = ...,
    ) -> T:
        """The cached value of `key`, else `compute()`'s, stored for about `ttl` seconds.

        An exception from `compute` reaches every caller waiting for that
        value and nothing is stored. Backend failures are never raised: the
        value is then computed from the source.
        """
        ...

    def peek(self, key: str, namespace: str | None = None) -> bytes | None:
        """`key`'s encoded value (under `namespace`, if given) when this process
        holds it, counted as a hit; else None, counting nothing (the
        `get_or_compute` that follows counts its own lookup). A hit in memory
        then costs no coroutine and no `compute` closure; a cache whose
        values are elsewhere (Redis) always says None."""
        ...

    async def delete(self, *keys: str) -> None:
        """Forget `keys` (read without a namespace), including values being computed now."""
        ...

    async def bump(self, namespace: str) -> None:
        """Forget every key read under `namespace`."""
        ...


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LabelledCounter(Protocol):
    def labels(self, **labels: str) -> Counter: ...


class CacheMetrics(Protocol):
    """The series a cache updates; `picshare.metrics.Metrics` has them."""

    @property
    def cache_requests(self) -> LabelledCounter: ...

    @property
    def cache_recomputes(self) -> LabelledCounter: ...

    @property
    def cache_errors(self) -> Counter: ...


class _NoCounter:
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        """Counts nothing: a cache made without metrics."""


class CacheCounters:
    """The counters of one cache, labelled once.

    Every `get_or_compute` counts one request: a hit when its value was in
    the cache, a miss otherwise (including callers that then waited for
    another's computation, and lookups Redis failed to answer). Each run of
    `compute` is a recompute, so misses minus recomputes is what stampede
    protection saved.
    """

    __slots__ = ("errors", "hits", "misses", "recomputes")

    def __init__(self, name: str, metrics: CacheMetrics | None) -> None:
        self.hits: Counter
        self.misses: Counter
        self.recomputes: Counter
        self.errors: Counter
        if metrics is None:
            self.hits = self.misses = self.recomputes = self.errors = _NoCounter()
            return
        self.hits = metrics.cache_requests.labels(cache=name, result="hit")
        self.misses = metrics.cache_requests.labels(cache=name, result="miss")
        self.recomputes = metrics.cache_recomputes.labels(cache=name)
        self.errors = metrics.cache_errors

    def lookup(self, hit: bool) -> None:
        """One `get_or_compute`: the process's counters and the request's (Server-Timing)."""
        (self.hits if hit else self.misses).inc()
        cache_lookup(hit)


def check_options(name: str, jitter: float) -> None:
    if not name:
        raise ValueError("a cache needs a name (its metrics label)")
    if not 0 <= jitter < 1:
        raise ValueError(f"cache {name}: jitter must be in [0, 1), not {jitter}")


def jittered(ttl: float, jitter: float) -> float:
    """`ttl` moved by up to ±`jitter` of itself, so entries written together do not expire
    together."""
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, not {ttl}")
    return ttl * random.uniform(1 - jitter, 1 + jitter)


def entry_key(key: str, namespace: str | None = None, generation: str = "") -> str:
    """The stored name of `key`: `k:<key>`, or `n:<namespace>@<generation>:<key>`."""
    if namespace is None:
        return f"k:{key}"
    return f"n:{namespace}@{generation}:{key}"

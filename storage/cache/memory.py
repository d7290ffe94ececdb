"""The in-process cache: for one process (no Redis configured), and for tests.

Entries are encoded bytes in an LRU of at most `max_entries`, each expiring
after its jittered TTL (checked when read; an expired entry waits for the LRU
to push it out). Concurrent misses of one key share one computation. A
`delete` while a value is being computed drops that value instead of storing
it: it may have been read before the write that caused the delete.

Namespace generations come from one counter that only grows, in their own
LRU: a generation pushed out of it is replaced by a new, higher one, which
costs misses but never brings back an entry from before a bump.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson

from storage.cache.base import CacheCounters, CacheMetrics, check_options, entry_key, jittered
from storage.cache.single_flight import SingleFlight

T = TypeVar("T")


class MemoryCache:
    __slots__ = (
        "_clock",
        "_counters",
        "_entries",
        "_flights",
        "_generations",
        "_jitter",
        "_max_entries",
        "_name",
        "_next_generation",
        "_pending",
    )

    def __init__(
        self,
        *,
        name: str,
        max_entries: int = 10_000,
        jitter: float = 0.1,
        metrics: CacheMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_options(name, jitter)
        if max_entries < 1:
            raise ValueError(f"cache {name}: max_entries must be at least 1")
        self._name = name
        self._max_entries = max_entries
        self._jitter = jitter
        self._clock = clock
        self._counters = CacheCounters(name, metrics)
        # entry key -> (expiry on `clock`, encoded value); least recently used first.
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._generations: OrderedDict[str, str] = OrderedDict()
        self._next_generation = itertools.count(1)
        # entry key -> token of the computation allowed to store it.
        self._pending: dict[str, object] = {}
        self._flights: SingleFlight[bytes] = SingleFlight()

    def __repr__(self) -> str:
        return (
            f"<MemoryCache {self._name} entries={len(self._entries)}/{self._max_entries}"
            f" computing={len(self._flights)}>"
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def name(self) -> str:
        return self._name

    async def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl: float,
        namespace: str | None = None,
        encode: Callable[[T], bytes] = orjson.dumps,
        decode: Callable[[bytes], T] = orjson.loads,
    ) -> T:
        name = entry_key(key, namespace, self._generation(namespace))
        data = self._get(name)
        if data is not None:
            self._counters.lookup(hit=True)
            return decode(data)
        self._counters.lookup(hit=False)
        data = await self._flights.run(name, lambda: self._fill(name, compute, ttl, encode))
        return decode(data)

    def peek(self, key: str, namespace: str | None = None) -> bytes | None:
        if namespace is None:
            name = entry_key(key)
        else:
            generation = self._generations.get(namespace)
            if generation is None:
                return None  # never read: get_or_compute makes its generation
            self._generations.move_to_end(namespace)
            name = entry_key(key, namespace, generation)
        data = self._get(name)
        if data is not None:
            self._counters.lookup(hit=True)
        return data

    async def delete(self, *keys: str) -> None:
        for key in keys:
            name = entry_key(key)
            self._entries.pop(name, None)
            self._pending.pop(name, None)
            self._flights.forget(name)

    async def bump(self, namespace: str) -> None:
        self._new_generation(namespace)

    def _get(self, name: str) -> bytes | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        expires, data = entry
        if self._clock() >= expires:
            del self._entries[name]
            return None
        self._entries.move_to_end(name)
        return data

    async def _fill(
        self,
        name: str,
        compute: Callable[[], Awaitable[T]],
        ttl: float,
        encode: Callable[[T], bytes],
    ) -> bytes:
        expires_in = jittered(ttl, self._jitter)
        token = object()
        self._pending[name] = token
        try:
            self._counters.recomputes.inc()
            data = encode(await compute())
        finally:
            ours = self._pending.get(name) is token
            if ours:
                del self._pending[name]
        if ours:
            self._entries[name] = (self._clock() + expires_in, data)
            self._entries.move_to_end(name)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return data

    def _generation(self, namespace: str | None) -> str:
        if namespace is None:
            return ""
        generation = self._generations.get(namespace)
        if generation is None:
            return self._new_generation(namespace)
        self._generations.move_to_end(namespace)
        return generation

    def _new_generation(self, namespace: str) -> str:
        generation = str(next(self._next_generation))
        self._generations[namespace] = generation
        self._generations.move_to_end(namespace)
        while len(self._generations) > self._max_entries:
            self._generations.popitem(last=False)
        return generation

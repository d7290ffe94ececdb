"""The cache shared by every process, in Redis, with leases against stampedes.

In this process, one lookup per key runs at a time and concurrent callers of
that key share it, hit or miss: a hot key costs one GET per round trip, and
a cold one sends one process to Redis, not every request. A lookup is one
GET (two under a namespace: the generation first). On a miss it asks Redis
for a short lease (`SET <prefix>lease:<key> <token> NX PX <lease>`, in one
script with a second look at the value). The lease holder computes and
stores the value only if it still holds the lease, then drops it; the other
processes poll (2 ms, doubling to 50 ms) until the value appears or the
lease is free for them to take. One that has waited `max_wait` computes the
value itself and does not store it. `delete` removes the lease with the
value, so a value computed before the write that caused the delete is never
stored: this is memcache's lease, as Facebook and Instagram use it.

Keys: `<prefix>k:<key>` for values; `<prefix>n:<namespace>@<generation>:<key>`
under a namespace; `<prefix>gen:<namespace>` holds the generation, a random
token (so a generation lost to eviction or expiry is replaced by a new one,
never by an old one whose entries may still be alive); `<prefix>lease:...`
for leases. The prefix defaults to `cache:<name>:`.

Redis failures are never raised. Each one is counted (`cache_errors`) and
logged at most once per `log_interval`; the value is computed from the
source. Every call is bounded by `timeout` whatever the client's retry policy,
and after a failure reads skip Redis for `backoff` seconds (then one caller
probes it), so a Redis that is down or hung costs one timeout per `backoff`,
not one per request (a full connection pool is counted but is no reason to
back off). Deletes and bumps always try Redis; one that fails leaves the old
value readable until its TTL ends: that is the staleness an outage can
cause, and why TTLs stay short.

The client must return bytes (`decode_responses=False`, the default).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import MaxConnectionsError, RedisError

from storage.cache.base import CacheCounters, CacheMetrics, check_options, entry_key, jittered
from storage.cache.single_flight import SingleFlight
from storage.scope import cache_waited

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
# OSError covers refused connections and TimeoutError (ours or the socket's).
ERRORS = (RedisError, OSError)

# KEYS: value, lease. ARGV: token, lease ms. -> {1, value} | {2, ""} (leased) | {0, ""}.
_GET_OR_LEASE = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
"""
# KEYS: value, lease. ARGV: token, value, ttl ms. Stores only under our lease.
_STORE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: lease. ARGV: token. Compare-and-delete: never drop another's lease.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_FOUND, _LEASED = 1, 2


class RedisCache:
    __slots__ = (
        "_backoff",
        "_counters",
        "_down_until",
        "_flights",
        "_generation_ttl",
        "_get_or_lease",
        "_jitter",
        "_lease_ms",
        "_log_interval",
        "_max_wait",
        "_name",
        "_next_log",
        "_prefix",
        "_redis",
        "_release",
        "_store",
        "_timeout",
        "_unlogged",
    )

    def __init__(
        self,
        redis: Redis,
        *,
        name: str,
        prefix: str | None = None,
        jitter: float = 0.1,
        lease: float = 2.0,
        max_wait: float | None = None,
        timeout: float = 0.5,
        backoff: float = 1.0,
        generation_ttl: float = 86_400.0,
        log_interval: float = 30.0,
        metrics: CacheMetrics | None = None,
    ) -> None:
        """`lease`: seconds a computation may take before another process may
        start one too; `max_wait` (default: `lease`): how long a caller waits
        for another's value; `timeout`: the bound on each Redis call;
        `generation_ttl`: how long an unbumped namespace keeps its generation."""
        check_options(name, jitter)
        for option, value in (("lease", lease), ("timeout", timeout), ("ttl", generation_ttl)):
            if value <= 0:
                raise ValueError(f"cache {name}: {option} must be positive")
        self._redis = redis
        self._name = name
        self._prefix = f"cache:{name}:" if prefix is None else prefix
        self._jitter = jitter
        self._lease_ms = max(1, round(lease * 1000))
        self._max_wait = lease if max_wait is None else max_wait
        self._timeout = timeout
        self._backoff = backoff
        self._generation_ttl = max(1, round(generation_ttl))
        self._log_interval = log_interval
        self._counters = CacheCounters(name, metrics)
        # One lookup per key at a time in this process, hits included: a hot key
        # costs one GET per round trip, however many requests want it.
        self._flights: SingleFlight[tuple[bytes, bool]] = SingleFlight()
        # Redis is skipped by reads until then (monotonic clock); 0 while it answers.
        self._down_until = 0.0
        self._next_log = 0.0
        self._unlogged = 0
        self._get_or_lease = redis.register_script(_GET_OR_LEASE)
        self._store = redis.register_script(_STORE)
        self._release = redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        state = "up" if self._down_until == 0 else "down"
        return (
            f"<RedisCache {self._name} prefix={self._prefix!r} redis={state}"
            f" computing={len(self._flights)}>"
        )

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
        data, hit = await self._flights.run(
            entry_key(key, namespace),
            lambda: self._lookup(key, namespace, compute, ttl, encode),
        )
        self._counters.lookup(hit)
        return decode(data)

    def peek(self, key: str, namespace: str | None = None) -> bytes | None:
        """Nothing at once: every value is a round trip away."""
        return None

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        names = [entry_key(key) for key in keys]
        for name in names:
            self._flights.forget(name)
        names = [self._prefix + name for name in names]
        try:
            await self._call(self._redis.delete(*names, *map(self._lease_of, names)))
        except ERRORS as exc:
            self._failed(exc)

    async def bump(self, namespace: str) -> None:
        # Lookups already running read the old generation: later callers must not join them.
        self._flights.forget_prefix(entry_key("", namespace))
        try:
            await self._call(
                self._redis.set(
                    self._generation_key(namespace), secrets.token_hex(6), ex=self._generation_ttl
                )
            )
        except ERRORS as exc:
            self._failed(exc)

    async def _lookup(
        self,
        key: str,
        namespace: str | None,
        compute: Callable[[], Awaitable[T]],
        ttl: float,
        encode: Callable[[T], bytes],
    ) -> tuple[bytes, bool]:
        """The encoded value, and whether it came from Redis."""
        if self._usable():
            try:
                name = await self._name_of(key, namespace)
                raw = await self._call(self._redis.get(name))
            except ERRORS as exc:
                self._failed(exc)
            else:
                self._down_until = 0.0
                if raw is not None:
                    return _as_bytes(raw), True
                return await self._fill(name, compute, ttl, encode), False
        return await self._compute(compute, encode), False

    async def _name_of(self, key: str, namespace: str | None) -> str:
        if namespace is None:
            return self._prefix + entry_key(key)
        fresh = secrets.token_hex(6)
        # One round trip: the current generation, or ours if there was none.
        old = await self._call(
            self._redis.set(
                self._generation_key(namespace),
                fresh,
                nx=True,
                get=True,
                ex=self._generation_ttl,
            )
        )
        generation = fresh if old is None else _as_bytes(old).decode()
        return self._prefix + entry_key(key, namespace, generation)

    async def _fill(
        self,
        name: str,
        compute: Callable[[], Awaitable[T]],
        ttl: float,
        encode: Callable[[T], bytes],
    ) -> bytes:
        lease = self._lease_of(name)
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        pause = 0.002
        while True:
            try:
                state, raw = await self._call(
                    self._get_or_lease(keys=[name, lease], args=[token, self._lease_ms])
                )
            except ERRORS as exc:
                self._failed(exc)
                return await self._compute(compute, encode)
            if state == _FOUND:
                return _as_bytes(raw)
            if state == _LEASED:
                break
            if loop.time() >= deadline:
                # The holder is slow or gone and its lease not yet expired.
                return await self._compute(compute, encode)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
        try:
            data = await self._compute(compute, encode)
        except BaseException:
            await self._give_back(lease, token)
            raise
        ttl_ms = max(1, round(jittered(ttl, self._jitter) * 1000))
        try:
            await self._call(self._store(keys=[name, lease], args=[token, data, ttl_ms]))
        except ERRORS as exc:
            self._failed(exc)
        return data

    async def _compute(
        self, compute: Callable[[], Awaitable[T]], encode: Callable[[T], bytes]
    ) -> bytes:
        self._counters.recomputes.inc()
        return encode(await compute())

    async def _give_back(self, lease: str, token: str) -> None:
        """Release our lease so waiters need not wait for it to expire."""
        try:
            await self._call(self._release(keys=[lease], args=[token]))
        except ERRORS as exc:
            self._failed(exc)

    async def _call(self, pending: Awaitable[R]) -> R:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                return await pending
        finally:
            cache_waited(time.perf_counter() - started)

    def _usable(self) -> bool:
        if self._down_until == 0:
            return True
        now = time.monotonic()
        if now < self._down_until:
            return False
        # This caller probes Redis; the others keep skipping it until it answers.
        self._down_until = now + self._backoff
        return True

    def _failed(self, exc: BaseException) -> None:
        self._counters.errors.inc()
        now = time.monotonic()
        if not isinstance(exc, MaxConnectionsError):
            # A full pool is a burst, not an outage: the next caller tries again.
            self._down_until = now + self._backoff
        self._unlogged += 1
        if now >= self._next_log:
            log.warning(
                "cache %s: Redis failed (%s: %s), serving from the source; %d error(s) since"
                " the last report",
                self._name,
                type(exc).__name__,
                exc,
                self._unlogged,
            )
            self._unlogged = 0
            self._next_log = now + self._log_interval

    def _lease_of(self, name: str) -> str:
        return f"{self._prefix}lease:{name.removeprefix(self._prefix)}"

    def _generation_key(self, namespace: str) -> str:
        return f"{self._prefix}gen:{namespace}"


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode()
    raise TypeError(f"unexpected Redis reply {type(raw).__name__}")

"""Read-your-writes marks: per user, the primary's WAL position after their
last write, kept briefly. A replica serves that user's reads only once its
replay has passed the mark. In Redis when configured (every process sees a
write made through any other), else in this process."""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis


class WalMarks(Protocol):
    async def get(self, user_id: int) -> int:
        """The user's mark, 0 when none is kept."""

    async def put(self, user_id: int, lsn: int) -> None:
        """Raise the user's mark to `lsn` (never lowers it)."""


class MemoryMarks:
    __slots__ = ("_marks", "_max_users", "_ttl")

    def __init__(self, *, ttl: float, max_users: int = 100_000) -> None:
        self._ttl = ttl
        self._max_users = max_users
        self._marks: dict[int, tuple[int, float]] = {}

    async def get(self, user_id: int) -> int:
        entry = self._marks.get(user_id)
        if entry is None or entry[1] < time.monotonic():
            return 0
        return entry[0]

    async def put(self, user_id: int, lsn: int) -> None:
        now = time.monotonic()
        old = self._marks.get(user_id)
        if old is not None and old[1] >= now and old[0] > lsn:
            lsn = old[0]
        if len(self._marks) >= self._max_users and user_id not in self._marks:
            self._prune(now)
        self._marks[user_id] = (lsn, now + self._ttl)

    def _prune(self, now: float) -> None:
        live = {k: v for k, v in self._marks.items() if v[1] >= now}
        if len(live) >= self._max_users:  # all live: drop the oldest half
            ordered = sorted(live.items(), key=lambda kv: kv[1][1])
            live = dict(ordered[len(ordered) // 2 :])
        self._marks = live


# Raise, never lower: two processes' writes may report out of order.
_RAISE = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if new > old then old = new end
redis.call('SET', KEYS[1], tostring(old), 'PX', ARGV[2])
return old
"""


class RedisMarks:
    __slots__ = ("_prefix", "_raise", "_redis", "_timeout", "_ttl_ms")

    def __init__(self, redis: Redis, *, ttl: float, timeout: float, namespace: str = "") -> None:
        self._redis = redis
        # Each shard's primary has its own WAL: its marks are its own.
        self._prefix = f"picshare:wal:{namespace}:" if namespace else "picshare:wal:"
        self._ttl_ms = int(ttl * 1000)
        self._timeout = timeout
        self._raise = redis.register_script(_RAISE)

    async def get(self, user_id: int) -> int:
        value = await self._redis.get(f"{self._prefix}{user_id}")
        return int(value) if value else 0

    async def put(self, user_id: int, lsn: int) -> None:
        await self._raise(keys=[f"{self._prefix}{user_id}"], args=[lsn, self._ttl_ms])

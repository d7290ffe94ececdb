"""The shared limiter: GCRA in Redis, one atomic Lua script per decision.

The script reads the clock with Redis `TIME`, so every process decides on the
same clock whatever its own says, and it is `gcra.decide` line by line. The
TAT is stored as a decimal string (Lua's own number-to-string keeps only 14
digits, too few for microseconds since 1970) with a `PX` expiry at the moment
it stops mattering, so idle clients cost no memory. Scripts that write after
`TIME` need effect replication, the default since Redis 5.

Each call runs under the Redis timeout; any failure (refused, timed out,
reset, an error reply) becomes a `BackendError` for the caller to handle.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError

from picshare.ratelimit.gcra import Decision
from picshare.ratelimit.limiter import BackendError
from picshare.ratelimit.policies import Policy

__all__ = ["KEY_PREFIX", "SCRIPT", "RedisLimiter"]

KEY_PREFIX = "picshare:rl:"

# KEYS[1]: the key. ARGV[1]: the emission interval (µs). ARGV[2]: the quota.
# Returns {allowed (0/1), remaining, reset (µs), retry after (µs)}.
SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local start = now
local stored = redis.call('GET', KEYS[1])
if stored then
  start = math.max(tonumber(stored), now)
end
local new_tat = start + interval
local debt = new_tat - now
if debt > capacity then
  return {0, 0, start - now, debt - capacity}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(debt / 1000))
return {1, math.floor((capacity - debt) / interval), debt, 0}
"""


class RedisLimiter:
    __slots__ = ("_client", "_prefix", "_script", "_timeout")

    def __init__(self, client: Redis, *, timeout: float, prefix: str = KEY_PREFIX) -> None:
        self._client = client
        self._timeout = timeout
        self._prefix = prefix
        # EVALSHA, and SCRIPT LOAD again if the server lost its script cache (a restart).
        self._script = client.register_script(SCRIPT)

    def __repr__(self) -> str:
        return f"<RedisLimiter prefix={self._prefix!r} timeout={self._timeout}>"

    def hit_now(self, key: str, policy: Policy) -> Decision | None:
        """Nothing at once: every decision is a round trip to Redis."""
        return None

    async def hit(self, key: str, policy: Policy) -> Decision:
        name = f"{self._prefix}{policy.name}:{key}"
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._script(keys=[name], args=[policy.interval, policy.quota])
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}") from exc
        allowed, remaining, reset_us, retry_us = (int(v) for v in reply)
        return Decision(policy, bool(allowed), remaining, reset_us, retry_us)

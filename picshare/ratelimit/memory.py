"""The in-process limiter: GCRA over a dict of key -> TAT.

Used alone when there is no Redis (one process), and as the fallback for
write policies while Redis is down. A decision reads and writes the dict with
no `await` in between, so concurrent tasks on the loop cannot interleave.

Memory stays bounded. A key whose TAT has passed means the same as a missing
one, so it can go: when the dict has doubled since the last sweep, a sweep
drops those (amortised O(1) per request). Past `max_keys` live keys (many
clients inside one window), the ones nearest to expiry are dropped down to
90% of the cap: that forgives the smallest debts, and the next sweep is again
a tenth of the cap away.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from operator import itemgetter

from picshare.ratelimit.gcra import Decision, decide
from picshare.ratelimit.policies import Policy

__all__ = ["MemoryLimiter", "monotonic_us"]

MIN_SWEEP = 1024


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryLimiter:
    __slots__ = ("_clock", "_max_keys", "_sweep_at", "_tats")

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], int] = monotonic_us) -> None:
        """`clock` gives microseconds on a clock that never goes back."""
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._max_keys = max_keys
        self._tats: dict[str, int] = {}
        self._sweep_at = min(MIN_SWEEP, max_keys)

    def __repr__(self) -> str:
        return f"<MemoryLimiter keys={len(self._tats)} max_keys={self._max_keys}>"

    def __len__(self) -> int:
        return len(self._tats)

    async def hit(self, key: str, policy: Policy) -> Decision:
        return self.hit_now(key, policy)

    def hit_now(self, key: str, policy: Policy) -> Decision:
        """`hit` without the coroutine, for callers that are not async."""
        now = self._clock()
        name = f"{policy.name}:{key}"
        decision, new_tat = decide(policy, now, self._tats.get(name))
        if new_tat is not None:
            self._tats[name] = new_tat
            if len(self._tats) > self._sweep_at:
                self._sweep(now)
        return decision

    def _sweep(self, now: int) -> None:
        tats = self._tats
        for name in [name for name, tat in tats.items() if tat <= now]:
            del tats[name]
        if len(tats) > self._max_keys:
            excess = len(tats) - self._max_keys * 9 // 10
            for name, _ in heapq.nsmallest(excess, tats.items(), key=itemgetter(1)):
                del tats[name]
        self._sweep_at = min(self._max_keys, max(MIN_SWEEP, 2 * len(tats)))

"""The shared limiter with a way out: when it fails, each policy says what to do.

"open": let the request through unmetered (reads: a Redis outage must not
take the site down). "local": decide in this process (writes: each process
then limits on its own, so N processes admit up to N times the quota, which
still bounds abuse).

After a failure the shared limiter is left alone for `cooldown` seconds, so
an outage costs one timeout per cooldown instead of one per request. Errors
are counted through `on_error`, and logged at most once per `log_every`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from picshare.ratelimit.gcra import Decision
from picshare.ratelimit.limiter import BackendError, RateLimiter
from picshare.ratelimit.policies import Policy

__all__ = ["FallbackLimiter"]

log = logging.getLogger(__name__)


class FallbackLimiter:
    __slots__ = (
        "_clock",
        "_cooldown",
        "_failures",
        "_local",
        "_log_every",
        "_logged_at",
        "_on_error",
        "_primary",
        "_retry_at",
    )

    def __init__(
        self,
        *,
        primary: RateLimiter,
        local: RateLimiter,
        on_error: Callable[[BackendError], None] | None = None,
        cooldown: float = 1.0,
        log_every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._local = local
        self._on_error = on_error
        self._cooldown = cooldown
        self._log_every = log_every
        self._clock = clock
        self._retry_at = float("-inf")
        self._logged_at = float("-inf")
        self._failures = 0  # since the last log line

    def __repr__(self) -> str:
        state = "ok" if self._clock() >= self._retry_at else "cooling down"
        return f"<FallbackLimiter {state} primary={self._primary!r} local={self._local!r}>"

    def hit_now(self, key: str, policy: Policy) -> Decision | None:
        """Nothing at once: the shared store decides while it is up."""
        return None

    async def hit(self, key: str, policy: Policy) -> Decision:
        if self._clock() >= self._retry_at:
            try:
                return await self._primary.hit(key, policy)
            except BackendError as exc:
                self._failed(exc)
        if policy.on_backend_error == "open":
            return Decision.unmetered_for(policy)
        return await self._local.hit(key, policy)

    def _failed(self, exc: BackendError) -> None:
        now = self._clock()
        self._retry_at = now + self._cooldown
        self._failures += 1
        if self._on_error is not None:
            self._on_error(exc)
        if now - self._logged_at >= self._log_every:
            log.warning(
                "rate limiter backend failed %d time(s) (%s); fail-open policies allow,"
                " the others limit in this process",
                self._failures,
                exc,
            )
            self._logged_at = now
            self._failures = 0

"""What every rate limiter offers, and the one error a backend may raise."""

from __future__ import annotations

from typing import Protocol

from picshare.ratelimit.gcra import Decision
from picshare.ratelimit.policies import Policy

__all__ = ["BackendError", "RateLimiter"]


class BackendError(Exception):
    """The shared store could not decide (down, slow, or refusing)."""


class RateLimiter(Protocol):
    async def hit(self, key: str, policy: Policy) -> Decision:
        """Count one request on `key` under `policy` and say whether it may pass.

        `key` names the client (e.g. "user:42"); the policy's name is added by
        the limiter, so one client has a separate budget per policy.
        """
        ...

    def hit_now(self, key: str, policy: Policy) -> Decision | None:
        """`hit` decided at once when this limiter can (in this process: no
        coroutine on every request); None, having counted nothing, when the
        decision is a round trip away (then call `hit`)."""
        ...

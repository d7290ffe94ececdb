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

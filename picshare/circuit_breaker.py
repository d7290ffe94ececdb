"""A circuit breaker per upstream (the gateway's, picshare/gateway.py).

Closed: requests pass; each transport failure (refused, timed out) counts,
a success resets the count. After `failures` in a row it opens: requests are
refused at once (503 with Retry-After) for `cooldown` seconds. Then it is
half-open: one trial request passes; its success closes the breaker, its
failure opens it again for another cooldown.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker", "State"]

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    __slots__ = ("_clock", "_cooldown", "_failures", "_in_a_row", "_opened_at", "_trial_at")

    def __init__(
        self, *, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._failures = failures
        self._cooldown = cooldown
        self._clock = clock
        self._in_a_row = 0
        self._opened_at: float | None = None
        # When the half-open trial request left. A trial never reported (its
        # client went away mid-request) stops counting after a cooldown.
        self._trial_at: float | None = None

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} failures={self._in_a_row}/{self._failures}>"

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._cooldown:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        """Whether a request may go now (a half-open breaker lets one through)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open":
            now = self._clock()
            if self._trial_at is None or now - self._trial_at >= self._cooldown:
                self._trial_at = now
                return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until the breaker lets a request try again (at least 1)."""
        if self._opened_at is None:
            return 1
        left = self._cooldown - (self._clock() - self._opened_at)
        return max(1, math.ceil(left))

    def succeeded(self) -> None:
        self._in_a_row = 0
        self._opened_at = None
        self._trial_at = None

    def failed(self) -> None:
        self._in_a_row += 1
        if self._trial_at is not None or self._in_a_row >= self._failures:
            self._opened_at = self._clock()
        self._trial_at = None

"""Named rate-limit policies, built from settings, one per class of route.

A route belongs to one class (the route table says which): uploads, login
(log-in and sign-up), other writes (any method but GET/HEAD), or reads
(GET/HEAD). Probes, metrics, static files and media are not limited: they
are cheap, and a page view fetching twenty thumbnails must not spend twenty
reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

from picshare.config import RateLimitSettings, parse_rate

__all__ = ["Policies", "Policy", "RateClass"]

MICROSECONDS = 1_000_000
OnBackendError = Literal["open", "local"]
# The class of a route, said by the route table (handlers/routes.py): uploads,
# login (log-in and sign-up), other writes (any method but GET/HEAD), or reads.
RateClass = Literal["uploads", "login", "writes", "reads"]


@dataclass(frozen=True, slots=True)
class Policy:
    """`quota` requests per `window` seconds: a burst of `quota`, then one per
    `window / quota` seconds (see gcra.py)."""

    name: str
    quota: int
    window: int
    # While the shared backend is down: allow ("open") or limit in this process ("local").
    on_backend_error: OnBackendError = "local"
    # The IETF `RateLimit-Policy` field: the same on every response, made once.
    header: str = field(init=False, repr=False, compare=False)
    # The emission interval in whole microseconds, rounded up so that no
    # window ever admits more than `quota` requests (made once: every
    # decision reads it).
    interval: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", f'"{self.name}";q={self.quota};w={self.window}')
        object.__setattr__(self, "interval", -(-self.window * MICROSECONDS // self.quota))


@dataclass(frozen=True, slots=True)
class Policies:
    uploads: Policy
    login: Policy
    writes: Policy
    reads: Policy

    def of(self, rate: RateClass) -> Policy:
        return {
            "uploads": self.uploads,
            "login": self.login,
            "writes": self.writes,
            "reads": self.reads,
        }[rate]

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def from_settings(settings: RateLimitSettings) -> Policies:
        """Settings are validated at load, so every rate parses; cached per settings."""

        def policy(name: str) -> Policy:
            rate = parse_rate(getattr(settings, name))
            assert rate is not None, name
            on_error: OnBackendError = "open" if name in settings.fail_open else "local"
            return Policy(name, rate[0], rate[1], on_error)

        return Policies(
            uploads=policy("uploads"),
            login=policy("login"),
            writes=policy("writes"),
            reads=policy("reads"),
        )

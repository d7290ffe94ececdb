"""Named rate-limit policies, built from settings, and which routes each covers.

A route belongs to one class: uploads, login (log-in and sign-up), other
writes (any method but GET/HEAD), or reads (GET/HEAD). Probes, metrics,
static files and media are not limited: they are cheap, and a page view
fetching twenty thumbnails must not spend twenty reads.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from picshare.config import RateLimitSettings, parse_rate

__all__ = ["EXEMPT_ROUTES", "LOGIN_ROUTES", "UPLOAD_ROUTES", "Policies", "Policy", "route_policy"]

MICROSECONDS = 1_000_000
OnBackendError = Literal["open", "local"]

UPLOAD_ROUTES = frozenset({"api.upload", "page.upload.submit"})
# Sign-up shares the log-in policy (per client IP): both are credential
# endpoints an attacker scripts, and both hash a password.
LOGIN_ROUTES = frozenset({"api.login", "page.login.submit", "api.signup", "page.signup.submit"})
EXEMPT_ROUTES = frozenset({"healthz", "readyz", "metrics", "static", "media"})
READ_METHODS = frozenset({"GET", "HEAD"})
_ALIAS = re.compile(r"\.alias\d+$")  # handlers/routes.py names a route's extra paths so


@dataclass(frozen=True, slots=True)
class Policy:
    """`quota` requests per `window` seconds: a burst of `quota`, then one per
    `window / quota` seconds (see gcra.py)."""

    name: str
    quota: int
    window: int
    # While the shared backend is down: allow ("open") or limit in this process ("local").
    on_backend_error: OnBackendError = "local"

    @property
    def interval(self) -> int:
        """The emission interval in whole microseconds, rounded up so that no
        window ever admits more than `quota` requests."""
        return -(-self.window * MICROSECONDS // self.quota)


@dataclass(frozen=True, slots=True)
class Policies:
    uploads: Policy
    login: Policy
    writes: Policy
    reads: Policy

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


def route_policy(route_name: str | None, method: str, policies: Policies) -> Policy | None:
    """The policy of a request to the named route, or None when it is not limited
    (exempt routes, and unmatched requests: 404 and 405 cost nothing)."""
    if route_name is None:
        return None
    name = _ALIAS.sub("", route_name)
    if name in EXEMPT_ROUTES:
        return None
    if name in UPLOAD_ROUTES:
        return policies.uploads
    if name in LOGIN_ROUTES:
        return policies.login
    return policies.reads if method in READ_METHODS else policies.writes

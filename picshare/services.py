"""One codebase, several services: which process serves what.

`run.py serve --service NAME` starts PicShare as one of these roles. Each
route of the table (handlers/routes.py) names the service that owns it; a
service process registers only its own routes, plus the probes every process
answers for itself ("each": /healthz, /readyz, /metrics). `all` is the
monolith (every route), `gateway` the public front (picshare/gateway.py and
handlers/gateway.py) that forwards each route to its owner.

What each service runs besides its routes (its profile):
- photos: the photo API, uploads, media, likes and comments, the moderation
  callback; its own image worker pool, and with a broker the `renditions`
  and `moderation` consumers.
- notifications: `/ws`, notification lists, webhooks, GraphQL (its
  subscriptions need this process's socket hub, so the whole endpoint lives
  here); the only service whose hub listens to the live-event bus; with a
  broker the `notifications` and `webhooks` consumers.
- auth: sign-up, log-in, tokens, sessions, the account and profiles and
  follows, the wallet; with a broker the `counters` consumer.
- search: search, and with a broker the `search` consumer that keeps its
  index (picshare/search_index.py). web: HTML pages, static files, the API
  document; web has an image worker pool too (the upload form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "PROFILES",
    "ROLES",
    "SERVICES",
    "Owner",
    "Profile",
    "Service",
    "UpstreamError",
    "check_upstream_url",
    "parse_pairs",
    "serves",
]

Service = Literal["auth", "photos", "notifications", "search", "web"]
# "each": every process answers it itself, the gateway included (probes).
Owner = Literal["auth", "photos", "notifications", "search", "web", "each"]
SERVICES: tuple[Service, ...] = ("auth", "photos", "notifications", "search", "web")
ROLES: tuple[str, ...] = ("all", *SERVICES, "gateway")


@dataclass(frozen=True, slots=True)
class Profile:
    # events.consumers for this service when a broker is configured and the
    # setting is left at "all" (without a broker every process runs them all).
    consumers: str
    # An image worker pool of its own (uploads); others get a thread stand-in.
    media: bool
    # Its socket hub listens to the live-event bus (Redis pub/sub).
    live: bool


PROFILES: dict[str, Profile] = {
    "all": Profile(consumers="all", media=True, live=True),
    "auth": Profile(consumers="counters", media=False, live=False),
    "photos": Profile(consumers="renditions,moderation", media=True, live=False),
    "notifications": Profile(consumers="notifications,webhooks", media=False, live=True),
    "search": Profile(consumers="search", media=False, live=False),
    "web": Profile(consumers="none", media=True, live=False),
}


def serves(role: str, owner: Owner) -> bool:
    """Whether a process of `role` registers a route owned by `owner`."""
    return role == "all" or owner == "each" or owner == role


class UpstreamError(ValueError):
    """A malformed `--upstream NAME=URL` or `gateway.timeouts` entry."""


def parse_pairs(entries: tuple[str, ...], what: str) -> dict[str, str]:
    """`NAME=VALUE` entries keyed by service name; each service at most once."""
    found: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in SERVICES or not value:
            raise UpstreamError(
                f"{what}: {entry!r} is not NAME=VALUE with NAME one of {', '.join(SERVICES)}"
            )
        if name in found:
            raise UpstreamError(f"{what}: {name} is given twice")
        found[name] = value
    return found


def check_upstream_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamError(f"gateway.upstreams: {name}={url} is not an http(s) URL")

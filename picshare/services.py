"""One codebase, several services: which process serves what.

`run.py serve --service NAME` starts PicShare as one of these roles. Each
route of the table (handlers/routes.py) names the service that owns it; a
service process registers only its own routes, plus the probes every process
answers for itself ("each": /healthz, /readyz, /metrics). `all` is the
monolith (every route), `gateway` the public front (picshare/gateway.py and
handlers/gateway.py) that forwards each route to its owner.

What each service runs besides its routes (its profile): the domain
services it builds (`parts`: its routes' and its consumers'), its consumers
of domain events, and the job kinds it runs (`jobs`: its runner claims no
others, so every service process runs jobs, each only its own):
- photos: the photo API, uploads, media, likes and comments, the moderation
  callback; its own image worker pool; the `renditions` and `moderation`
  consumers; the photo and follow jobs.
- notifications: `/ws`, notification lists, webhooks, GraphQL (its
  subscriptions need this process's socket hub, so the whole endpoint lives
  here); the only service whose hub listens to the live-event bus; the
  `notifications` consumer (with a broker it writes every notification,
  picshare/notify.py) and `webhooks`; the deliveries' jobs.
- auth: sign-up, log-in, tokens, sessions, the account and profiles and
  follows, the wallet; the `counters` consumer; the account, follow and
  payment jobs.
- search: search, and the `search` consumer that keeps its index
  (picshare/search_index.py). web: HTML pages, static files, the API
  document; web has an image worker pool too (the upload form); no consumer
  and no jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "CONSUMER_PARTS",
    "PARTS",
    "PROFILES",
    "ROLES",
    "SERVICES",
    "Owner",
    "Part",
    "Profile",
    "Service",
    "UpstreamError",
    "check_upstream_url",
    "parse_pairs",
    "parts_for",
    "serves",
]

Service = Literal["auth", "photos", "notifications", "search", "web"]
# "each": every process answers it itself, the gateway included (probes).
Owner = Literal["auth", "photos", "notifications", "search", "web", "each"]
SERVICES: tuple[Service, ...] = ("auth", "photos", "notifications", "search", "web")
ROLES: tuple[str, ...] = ("all", *SERVICES, "gateway")
# The domain services a process may build (picshare/app.py `_services`);
# "notifications" is the lists and the notifier's own jobs.
Part = Literal[
    "users", "photos", "moderation", "social", "payments", "notifications", "search", "webhooks"
]
PARTS: tuple[Part, ...] = (
    "users",
    "photos",
    "moderation",
    "social",
    "payments",
    "notifications",
    "search",
    "webhooks",
)


@dataclass(frozen=True, slots=True)
class Profile:
    # The consumers this service runs: events.consumers when that is left at
    # "all" (and without a broker, whose events' jobs it then claims).
    consumers: str
    # An image worker pool of its own (uploads); others get a thread stand-in.
    media: bool
    # Its socket hub listens to the live-event bus (Redis pub/sub).
    live: bool
    # The domain services its routes use (it builds those and no others,
    # plus what its consumers need: `parts_for`).
    parts: frozenset[Part]
    # Those whose job kinds it runs: its job runner claims only these; the
    # other parts' kinds it may enqueue, for the service that runs them.
    jobs: frozenset[Part]


_NONE: frozenset[Part] = frozenset()
_EVERY: frozenset[Part] = frozenset(PARTS)
# The pages and GraphQL read nearly everything.
_READERS: frozenset[Part] = _EVERY - {"moderation"}

PROFILES: dict[str, Profile] = {
    "all": Profile(consumers="all", media=True, live=True, parts=_EVERY, jobs=_EVERY),
    "auth": Profile(
        consumers="counters",
        media=False,
        live=False,
        parts=frozenset({"users", "social", "payments"}),
        jobs=frozenset({"users", "social", "payments"}),
    ),
    "photos": Profile(
        consumers="renditions,moderation",
        media=True,
        live=False,
        parts=frozenset({"users", "photos", "moderation", "social"}),
        jobs=frozenset({"photos", "social"}),
    ),
    "notifications": Profile(
        consumers="notifications,webhooks",
        media=False,
        live=True,
        parts=_READERS,
        jobs=frozenset({"notifications", "webhooks"}),
    ),
    "search": Profile(
        consumers="search",
        media=False,
        live=False,
        parts=frozenset({"users", "search"}),
        jobs=frozenset({"search"}),
    ),
    "web": Profile(consumers="none", media=True, live=False, parts=_READERS, jobs=_NONE),
}

# What each consumer's handler is part of (a ready photo's followers are
# listed by the photo service).
CONSUMER_PARTS: dict[str, frozenset[Part]] = {
    "renditions": frozenset({"photos"}),
    "notifications": frozenset({"photos", "notifications"}),
    "counters": _NONE,
    "moderation": frozenset({"photos", "moderation"}),
    "webhooks": frozenset({"webhooks"}),
    "search": frozenset({"search"}),
}


def parts_for(role: str, consumers: list[str]) -> frozenset[Part]:
    """The domain services a process of `role` builds when it runs these
    consumers: its routes' (users always: every request's identity), and
    its consumers'."""
    needed: set[Part] = {"users", *PROFILES[role].parts}
    for name in consumers:
        needed |= CONSUMER_PARTS[name]
    return frozenset(needed)


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

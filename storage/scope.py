"""What the storage router learns about the request it serves, without being
passed it: who is acting (whose writes to remember), which databases served
(for `Server-Timing`), whether a read was served while the primary was down
(`PicShare-Stale`), whether a shard was left out of a read
(`PicShare-Partial`), and a browser's own last-write position (its cookie);
and where the request's time went (`Server-Timing`: each database use, the
cache's round trips and its hits and misses, rendering).

The HTTP layer opens a scope per request; code outside a request (jobs, the
CLI) has none, and the router then records nothing."""

from __future__ import annotations

from contextvars import ContextVar


class Scope:
    __slots__ = (
        "actor",
        "cache_hits",
        "cache_misses",
        "cache_seconds",
        "db_seconds",
        "marks",
        "min_lsn",
        "partial",
        "render_seconds",
        "served",
        "stale",
        "wrote_lsn",
    )

    def __init__(self, actor: int | None = None, min_lsn: dict[str, int] | None = None) -> None:
        self.actor = actor
        # A replica must have replayed this far to serve this request's reads,
        # by database name ("" without shards; each shard's primary has its own WAL).
        self.min_lsn: dict[str, int] = min_lsn or {}
        self.served: list[str] = []
        # How long each use in `served` held its connection.
        self.db_seconds: list[float] = []
        self.cache_hits = 0
        self.cache_misses = 0
        self.cache_seconds = 0.0
        self.render_seconds = 0.0
        self.stale = False
        # A shard did not answer a read across shards in time (`PicShare-Partial`).
        self.partial = False
        # Each primary's WAL position after this request's last write there.
        self.wrote_lsn: dict[str, int] = {}
        # Read-your-writes marks already fetched for this request, by database and user.
        self.marks: dict[tuple[str, int], int] = {}

    def note(self, label: str) -> int:
        """One database use, in order (a header's worth: the first 16); its
        place in `db_seconds`, or -1 past those."""
        if len(self.served) < 16:
            self.served.append(label)
            self.db_seconds.append(0.0)
            return len(self.served) - 1
        return -1


CURRENT: ContextVar[Scope | None] = ContextVar("picshare_db_scope", default=None)


def open_scope(min_lsn: dict[str, int] | None = None) -> Scope:
    """A fresh scope for the current task (one request)."""
    scope = Scope(min_lsn=min_lsn)
    CURRENT.set(scope)
    return scope


def current() -> Scope | None:
    return CURRENT.get()


def cache_lookup(hit: bool) -> None:
    """A cache lookup of this request (no request: nothing kept)."""
    scope = CURRENT.get()
    if scope is not None:
        if hit:
            scope.cache_hits += 1
        else:
            scope.cache_misses += 1


def cache_waited(seconds: float) -> None:
    scope = CURRENT.get()
    if scope is not None:
        scope.cache_seconds += seconds


def rendered(seconds: float) -> None:
    scope = CURRENT.get()
    if scope is not None:
        scope.render_seconds += seconds

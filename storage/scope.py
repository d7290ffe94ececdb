"""What the storage router learns about the request it serves, without being
passed it: who is acting (whose writes to remember), which databases served
(for `Server-Timing`), whether a read was served while the primary was down
(`PicShare-Stale`), whether a shard was left out of a read
(`PicShare-Partial`), and a browser's own last-write position (its cookie).

The HTTP layer opens a scope per request; code outside a request (jobs, the
CLI) has none, and the router then records nothing."""

from __future__ import annotations

from contextvars import ContextVar


class Scope:
    __slots__ = ("actor", "marks", "min_lsn", "partial", "served", "stale", "wrote_lsn")

    def __init__(self, actor: int | None = None, min_lsn: dict[str, int] | None = None) -> None:
        self.actor = actor
        # A replica must have replayed this far to serve this request's reads,
        # by database name ("" without shards; each shard's primary has its own WAL).
        self.min_lsn: dict[str, int] = min_lsn or {}
        self.served: list[str] = []
        self.stale = False
        # A shard did not answer a read across shards in time (`PicShare-Partial`).
        self.partial = False
        # Each primary's WAL position after this request's last write there.
        self.wrote_lsn: dict[str, int] = {}
        # Read-your-writes marks already fetched for this request, by database and user.
        self.marks: dict[tuple[str, int], int] = {}

    def note(self, label: str) -> None:
        """One database use, in order (a header's worth: the first 16)."""
        if len(self.served) < 16:
            self.served.append(label)


CURRENT: ContextVar[Scope | None] = ContextVar("picshare_db_scope", default=None)


def open_scope(min_lsn: dict[str, int] | None = None) -> Scope:
    """A fresh scope for the current task (one request)."""
    scope = Scope(min_lsn=min_lsn)
    CURRENT.set(scope)
    return scope


def current() -> Scope | None:
    return CURRENT.get()

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

    def __init__(self, actor: int | None = None, min_lsn: int = 0) -> None:
        self.actor = actor
        # A replica must have replayed this far to serve this request's reads.
        self.min_lsn = min_lsn
        self.served: list[str] = []
        self.stale = False
        # A shard did not answer a read across shards in time (`PicShare-Partial`).
        self.partial = False
        # The primary's WAL position after this request's last write (0: none).
        self.wrote_lsn = 0
        # Read-your-writes marks already fetched for this request, by user id.
        self.marks: dict[int, int] = {}

    def note(self, label: str) -> None:
        """One database use, in order (a header's worth: the first 16)."""
        if len(self.served) < 16:
            self.served.append(label)


CURRENT: ContextVar[Scope | None] = ContextVar("picshare_db_scope", default=None)


def open_scope(min_lsn: int = 0) -> Scope:
    """A fresh scope for the current task (one request)."""
    scope = Scope(min_lsn=min_lsn)
    CURRENT.set(scope)
    return scope


def current() -> Scope | None:
    return CURRENT.get()

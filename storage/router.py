"""The storage router: the one object services hold (DESIGN.md, "The storage
router"). Services ask it for a connection by intent, never for a pool:

- `write()` / `transaction()`: the primary, always (every transaction).
- `read(consistency)`: `PRIMARY`, `ANY`, or `read_your_writes(user_id)`.

Behind it, one primary and its replicas, a replica policy (storage/replicas)
and a watcher per database (storage/watch.py). The single-database default is
this same code with no replicas: every read goes to the primary.

Availability over consistency for reads (CAP): while the primary is down, every
read is served by a replica that answers, however far behind, and the request
is marked stale. Writes fail fast with `DatabaseUnavailable` (503)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage import scope as request_scope
from storage.db import Connection
from storage.lsn import parse_lsn
from storage.node import Node
from storage.replicas import ReplicaPolicy
from storage.wal_marks import MemoryMarks, WalMarks
from storage.watch import LagClock

log = logging.getLogger(__name__)

Isolation = Literal["read_committed", "repeatable_read", "serializable"]

# What "the server is gone" looks like from asyncpg: refused or reset sockets,
# a closed connection, a server shutting down or not yet accepting, a timeout.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


# How long a mark the shared store failed to keep is kept in this process
# (as long as any replica may lag and still serve, and then some).
LOCAL_MARK_TTL = 120.0
# A mark no replica reaches: reads go to the primary while it is kept.
UNKNOWN_POSITION = 1 << 62


class DatabaseUnavailable(Exception):
    """The database this needs cannot be reached now; retrying later may work (503)."""

    def __init__(self, label: str) -> None:
        super().__init__(f"the {label} database is unavailable")
        self.label = label


class ShardMoving(DatabaseUnavailable):
    """The row's logical shard is being moved to another database
    (storage/shard_move.py): its writes pause for a moment (503, retry)."""


# The SQLSTATE of picshare_fence() (migration 0011).
FENCED = "PS001"


@dataclass(frozen=True, slots=True)
class Consistency:
    """How fresh a read must be. Build with PRIMARY, ANY or read_your_writes()."""

    kind: Literal["primary", "any", "ryw"]
    user_id: int | None = None


PRIMARY = Consistency("primary")
ANY = Consistency("any")


def read_your_writes(user_id: int | None) -> Consistency:
    """Whatever `user_id` wrote is visible (anonymous readers: ANY)."""
    return ANY if user_id is None else Consistency("ryw", user_id)


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    label: str
    role: str
    up: bool
    lag_seconds: float
    lsn: int
    in_use: int
    size: int
    error: str


class Databases:
    __slots__ = (
        "_clock",
        "_kept_here",
        "_marks",
        "_policy",
        "_timeout",
        "max_lag",
        "name",
        "on_write",
        "primary",
        "replicas",
    )

    def __init__(
        self,
        primary: Node,
        replicas: Sequence[Node] = (),
        *,
        policy: ReplicaPolicy,
        marks: WalMarks,
        clock: LagClock,
        max_lag: float,
        acquire_timeout: float,
        name: str = "",
    ) -> None:
        # "" without shards, else the shard's name ("shard-2"): what its WAL
        # positions are filed under in a request's scope and the browser's cookie.
        self.name = name
        self.primary = primary
        self.replicas = tuple(replicas)
        self._policy = policy
        self._marks = marks
        self._clock = clock
        self.max_lag = max_lag
        self._timeout = acquire_timeout
        # Marks the shared store failed to keep, kept in this process instead:
        # a logout whose mark was lost must still end its token here.
        self._kept_here = MemoryMarks(ttl=LOCAL_MARK_TTL)
        # Called after a remembered write (the watcher's nudge), if set.
        self.on_write: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Databases primary+{len(self.replicas)} replicas>"

    # -- writing ---------------------------------------------------------------

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """A primary connection, outside a transaction (autocommit statements)."""
        async with self._on(self.primary) as conn:
            yield conn
            await self._remember_write(conn)

    @asynccontextmanager
    async def transaction(
        self, *, isolation: Isolation = "read_committed", readonly: bool = False
    ) -> AsyncIterator[Connection]:
        """A primary connection inside one transaction (`readonly`: one that
        must read the primary, such as a balance, and writes nothing to remember)."""
        async with self._on(self.primary) as conn:
            async with conn.transaction(isolation=isolation, readonly=readonly):
                yield conn
            if not readonly:
                await self._remember_write(conn)

    async def _remember_write(self, conn: Connection) -> None:
        # Only worth a round trip when a replica could serve this user stale data.
        if not self.replicas:
            return
        scope = request_scope.current()
        if scope is None:
            return
        try:
            lsn = parse_lsn(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
        except Exception as exc:
            # The write is committed: whatever happens now must not turn it
            # into an error a client would retry. Not knowing its position,
            # send this user's reads to the primary for the mark's lifetime.
            log.warning("could not read the WAL position after a write: %s", exc)
            lsn = UNKNOWN_POSITION
        else:
            self._clock.saw(lsn)
        if self.on_write is not None:
            self.on_write()
        scope.wrote_lsn[self.name] = max(scope.wrote_lsn.get(self.name, 0), lsn)
        if scope.actor is not None:
            await self._put_mark(scope.actor, lsn)
            scope.marks[(self.name, scope.actor)] = lsn

    async def remember_writer(self, user_id: int) -> None:
        """Count this request's writes as `user_id`'s (a sign-up: the writer
        had no id until its own transaction made one)."""
        scope = request_scope.current()
        wrote = scope.wrote_lsn.get(self.name, 0) if scope is not None else 0
        if self.replicas and wrote:
            await self._put_mark(user_id, wrote)

    async def _put_mark(self, user_id: int, lsn: int) -> None:
        try:
            await self._marks.put(user_id, lsn)
        except Exception as exc:
            log.warning("could not keep a read-your-writes mark: %s", exc)
            await self._kept_here.put(user_id, lsn)

    # -- reading ---------------------------------------------------------------

    @asynccontextmanager
    async def read(self, consistency: Consistency = ANY) -> AsyncIterator[Connection]:
        """A connection for reading, from a replica when one is fresh enough."""
        node = await self._node_for_read(consistency)
        try:
            conn = await self._acquire(node)
        except DatabaseUnavailable:
            if node is self.primary:
                raise
            # That replica just went away (now marked down): choose again.
            node = await self._node_for_read(consistency)
            conn = await self._acquire(node)
        scope = request_scope.current()
        if scope is not None and not self.primary.up:
            scope.stale = True
        async with self._lent(node, conn) as lent:
            yield lent

    async def _node_for_read(self, consistency: Consistency) -> Node:
        primary = self.primary
        if not self.replicas:
            return primary
        if primary.up and consistency.kind == "primary":
            return primary
        if not primary.up:
            return self._any_replica() or primary
        need = 0
        scope = request_scope.current()
        if scope is not None:
            need = scope.min_lsn.get(self.name, 0)
        if consistency.kind == "ryw" and consistency.user_id is not None:
            mark = await self._mark(consistency.user_id, scope)
            if mark is None:  # unknown: only the primary is safe
                return primary
            need = max(need, mark)
        candidates = [n for n in self.replicas if n.up and n.lag <= self.max_lag and n.lsn >= need]
        if not candidates:
            return primary
        key = consistency.user_id
        if key is None and scope is not None:
            key = scope.actor  # sticky policies keep a signed-in user's reads together
        return self._policy.choose(candidates, key)

    async def _mark(self, user_id: int, scope: request_scope.Scope | None) -> int | None:
        """The user's last-write position (0: none kept), None when the store fails."""
        if scope is not None and (self.name, user_id) in scope.marks:
            return scope.marks[(self.name, user_id)]
        try:
            mark = max(await self._marks.get(user_id), await self._kept_here.get(user_id))
        except Exception as exc:
            log.warning("could not read a read-your-writes mark: %s", exc)
            return None
        if scope is not None:
            scope.marks[(self.name, user_id)] = mark
        return mark

    async def wrote_recently(self, user_id: int) -> bool:
        """Whether a replica might not have replayed this user's last write yet
        (a mark is kept): then what decides access is asked of the primary."""
        if not self.replicas or not self.primary.up:
            return False
        return await self._mark(user_id, request_scope.current()) != 0

    def _any_replica(self) -> Node | None:
        """With the primary down: the freshest replica that answers."""
        live = [n for n in self.replicas if n.up]
        return max(live, key=lambda n: n.lsn) if live else None

    # -- both ------------------------------------------------------------------

    @asynccontextmanager
    async def _on(self, node: Node) -> AsyncIterator[Connection]:
        conn = await self._acquire(node)
        async with self._lent(node, conn) as lent:
            yield lent

    async def _acquire(self, node: Node) -> PoolConnectionProxy:
        if not node.up and node is self.primary:
            # Only ever down when watched (there are replicas): the watcher
            # brings it back; until then fail fast rather than wait out a
            # connect timeout per request.
            raise DatabaseUnavailable(node.label)
        try:
            conn: PoolConnectionProxy = await node.pool.acquire(timeout=self._timeout)
        except TimeoutError as exc:
            # A full pool or a slow server is not a dead one: the watcher decides.
            raise DatabaseUnavailable(node.label) from exc
        except CONNECTION_ERRORS as exc:
            self._down(node, exc)
            raise DatabaseUnavailable(node.label) from exc
        return conn

    @asynccontextmanager
    async def _lent(self, node: Node, conn: PoolConnectionProxy) -> AsyncIterator[Connection]:
        scope = request_scope.current()
        use = -1
        if scope is not None:
            use = scope.note(node.label)
            lent_at = time.perf_counter()
        try:
            try:
                yield conn
            except TimeoutError as exc:  # a command timed out: slow is not gone
                raise DatabaseUnavailable(node.label) from exc
            except asyncpg.PostgresError as exc:
                if exc.sqlstate == FENCED:
                    raise ShardMoving(node.label) from exc
                raise
            except CONNECTION_ERRORS as exc:
                if isinstance(exc, OSError) and not conn.is_closed():
                    # Not this connection's failure: the caller's own I/O in
                    # the block (a blob write on a full disk, say).
                    raise
                self._down(node, exc)
                raise DatabaseUnavailable(node.label) from exc
        finally:
            if use >= 0 and scope is not None:
                scope.db_seconds[use] = time.perf_counter() - lent_at
            await node.pool.release(conn)

    def _down(self, node: Node, exc: BaseException) -> None:
        # Without replicas nothing watches the primary, so nothing would mark
        # it up again: each request then tries it afresh instead.
        if self.replicas:
            node.mark_down(exc)

    def status(self) -> list[DatabaseStatus]:
        return [
            DatabaseStatus(
                label=n.label,
                role=n.role.value,
                up=n.up,
                lag_seconds=round(n.lag, 3),
                lsn=n.lsn,
                in_use=n.in_use(),
                size=n.pool.get_size(),
                error=n.last_error,
            )
            for n in (self.primary, *self.replicas)
        ]

"""The health task per database: polls WAL positions on a connection of its
own, so choosing a replica for a read costs no round trip.

The primary reports `pg_current_wal_lsn()`; each replica
`pg_last_wal_replay_lsn()`. Lag is time, measured against the primary's
history: how long ago the primary first stood past the position the replica
has replayed. A replica that has replayed everything lags 0 s however long
the primary has been idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque

import asyncpg

from storage.lsn import parse_lsn
from storage.node import Node, Role

log = logging.getLogger(__name__)

# After a write, a replica is polled this often until it has replayed the
# primary's latest known position (or CHASE_SECONDS pass): the writer's next
# reads then find it usable within milliseconds instead of at the next poll.
CHASE_STEP = 0.002
CHASE_SECONDS = 0.05
_PRIMARY_SQL = "SELECT pg_current_wal_lsn()::text"
_REPLICA_SQL = "SELECT pg_last_wal_replay_lsn()::text"


class LagClock:
    """When the primary was first seen at each WAL position (a bounded history).

    Samples are at least `step` seconds apart (a later position within the
    step replaces the last one's position, keeping its time), so the history
    covers at least keep * step seconds however fast the writes come; a
    replica behind all of it lags more than that, so more than any bound."""

    __slots__ = ("_samples", "_step")

    def __init__(self, keep: int = 8192, step: float = 0.01) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=keep)
        self._step = step

    def saw(self, lsn: int, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        if not self._samples:
            self._samples.append((lsn, at))
            return
        last_lsn, last_at = self._samples[-1]
        if lsn <= last_lsn:
            return
        if at - last_at < self._step and len(self._samples) > 1:
            self._samples[-1] = (lsn, last_at)
        else:
            self._samples.append((lsn, at))

    def latest(self) -> int:
        return self._samples[-1][0] if self._samples else 0

    def lag(self, replayed: int, now: float | None = None) -> float:
        """Seconds since the primary first stood past `replayed` (0: caught up;
        infinite when the replica is behind the whole history)."""
        if self._samples and replayed < self._samples[0][0]:
            # Behind all we know (a replica far behind at start, or the
            # history rolled over): how far is unknown, so too far.
            return math.inf
        for lsn, at in self._samples:
            if lsn > replayed:
                return max(0.0, (time.monotonic() if now is None else now) - at)
        return 0.0


class Watcher:
    """One polling task per node; `close()` stops them."""

    __slots__ = ("_clock", "_dsns", "_interval", "_nodes", "_nudges", "_tasks", "_timeout")

    def __init__(
        self,
        nodes: list[Node],
        dsns: list[str],
        clock: LagClock,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self._nodes = nodes
        self._dsns = dsns
        self._clock = clock
        self._interval = interval
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._nudges = [asyncio.Event() for _ in nodes]

    async def start(self) -> None:
        # One poll of each first, so the first reads already know who is usable.
        pairs = list(zip(self._nodes, self._dsns, strict=True))
        conns = await asyncio.gather(*(self._poll_once(n, d, None) for n, d in pairs))
        self._tasks = [
            asyncio.create_task(self._run(node, dsn, conn, nudge), name=f"watch-{node.label}")
            for (node, dsn), conn, nudge in zip(pairs, conns, self._nudges, strict=True)
        ]

    def nudge(self) -> None:
        """The primary just took a write: replicas, look now (and keep looking
        briefly until you have it)."""
        for node, event in zip(self._nodes, self._nudges, strict=True):
            if node.role is Role.REPLICA:
                event.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _run(
        self, node: Node, dsn: str, conn: asyncpg.Connection | None, nudged: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(nudged.wait(), self._interval)
                chase = nudged.is_set()
                nudged.clear()
                conn = await self._poll_once(node, dsn, conn)
                deadline = loop.time() + CHASE_SECONDS
                while chase and node.up and node.lsn < self._clock.latest():
                    if loop.time() > deadline:
                        break
                    await asyncio.sleep(CHASE_STEP)
                    conn = await self._poll_once(node, dsn, conn)
        finally:
            if conn is not None:
                conn.terminate()

    async def _poll_once(
        self, node: Node, dsn: str, conn: asyncpg.Connection | None
    ) -> asyncpg.Connection | None:
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    dsn,
                    timeout=self._timeout,
                    server_settings={"application_name": "picshare-watch"},
                )
            sql = _PRIMARY_SQL if node.role is Role.PRIMARY else _REPLICA_SQL
            text = await conn.fetchval(sql, timeout=self._timeout)
        except Exception as exc:
            # Refused, reset, timed out, shutting down, or a connection left in
            # a bad state (asyncpg's InternalClientError was seen): whatever it
            # was, the watcher lives on and the database counts as down until
            # a fresh connection answers.
            if node.up:
                log.warning("database %s is down: %s", node.label, exc)
            node.mark_down(exc)
            if conn is not None:
                conn.terminate()
            return None
        now = time.monotonic()
        node.lsn = parse_lsn(text)
        node.checked_at = now
        if node.role is Role.PRIMARY:
            self._clock.saw(node.lsn, now)
        else:
            node.lag = self._clock.lag(node.lsn, now)
        if not node.up:
            log.info("database %s is up again", node.label)
            node.up = True
            node.last_error = ""
        return conn

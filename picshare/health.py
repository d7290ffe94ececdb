"""What operations asks of the stores: are they answering (readiness), and the
gauges that /metrics reads from them (the job queue's depth)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from storage import jobs_repo, outbox_repo
from storage.blobs import BlobStore
from storage.router import PRIMARY, Databases, DatabaseStatus
from storage.shards import Shards

log = logging.getLogger(__name__)
OK = "ok"


class HealthService:
    __slots__ = ("_blobs", "_db", "_events", "_timeout")

    def __init__(
        self,
        *,
        db: Shards,
        blobs: BlobStore,
        timeout: float = 2.0,
        events: Callable[[], str] | None = None,
    ) -> None:
        """`events`: the broker relay's state, when events go through one."""
        self._db = db
        self._events = events
        self._blobs = blobs
        self._timeout = timeout  # per check: a hung store answers "failing", not never

    def __repr__(self) -> str:
        return f"<HealthService timeout={self._timeout}s>"

    def databases(self) -> list[DatabaseStatus]:
        """Each database as its watcher last saw it (role, up, lag, connections)."""
        return self._db.status()

    async def readiness(self) -> dict[str, str]:
        """Each backing store's state: "ok", or "failing: <error type>"; each
        replica's too ("ok", "down: <error>", or "lagging: <seconds>s")."""
        checks: dict[str, str] = {}
        databases = self._db.everything()
        # One database: "database", as before shards; several: each by its label.
        probes: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("database" if len(databases) == 1 else db.primary.label, answers(db, self._timeout))
            for db in databases
        ]
        probes.append(("blobs", self._blobs.ping))
        if self._events is not None:
            # Not a reason to refuse traffic: events wait in the outbox.
            checks["events"] = self._events()
        for name, probe in probes:
            try:
                await asyncio.wait_for(probe(), self._timeout)
                checks[name] = OK
            except Exception as exc:
                log.warning("readiness: %s failed: %s", name, exc)
                checks[name] = f"failing: {type(exc).__name__}"
        if len(databases) > 1:
            # One word for all of them too, as without shards: ok when every
            # primary answers, else which do not.
            down = [db.primary.label for db in databases if checks[db.primary.label] != OK]
            checks["database"] = OK if not down else f"failing: {', '.join(down)}"
        for db in databases:
            for status in db.status()[1:]:
                if not status.up:
                    checks[status.label] = f"down: {status.error or 'unreachable'}"
                elif status.lag_seconds > db.max_lag:
                    checks[status.label] = f"lagging: {status.lag_seconds:.1f}s"
                else:
                    checks[status.label] = OK
        return checks

    async def outbox_backlog(self) -> int:
        """Domain events not handed to their relay yet (a broker outage), every shard."""

        async def backlog(db: Databases) -> int:
            async with db.read(PRIMARY) as conn:
                return await outbox_repo.backlog(conn)

        return sum((await self._db.gather(backlog)).results)

    async def jobs_queued(self) -> int:
        """Jobs queued or running, across every process and shard."""

        async def depth(db: Databases) -> int:
            async with db.read(PRIMARY) as conn:
                return await jobs_repo.queue_depth(conn)

        return sum((await self._db.gather(depth)).results)


def answers(db: Databases, timeout: float) -> Callable[[], Awaitable[None]]:
    """A probe: the database's primary answers a query (replicas are watched, not pinged)."""

    async def probe() -> None:
        async with db.write() as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)

    return probe

"""What operations asks of the stores: are they answering (readiness), and the
gauges that /metrics reads from them (the job queue's depth)."""

from __future__ import annotations

import asyncio
import logging

from storage import db, jobs_repo
from storage.blobs import BlobStore
from storage.db import Pool

log = logging.getLogger(__name__)
OK = "ok"


class HealthService:
    __slots__ = ("_blobs", "_pool", "_timeout")

    def __init__(self, *, pool: Pool, blobs: BlobStore, timeout: float = 2.0) -> None:
        self._pool = pool
        self._blobs = blobs
        self._timeout = timeout  # per check: a hung store answers "failing", not never

    def __repr__(self) -> str:
        return f"<HealthService timeout={self._timeout}s>"

    async def readiness(self) -> dict[str, str]:
        """Each backing store's state: "ok", or "failing: <error type>"."""
        checks: dict[str, str] = {}
        probes = (("database", self._database), ("blobs", self._blobs.ping))
        for name, probe in probes:
            try:
                await asyncio.wait_for(probe(), self._timeout)
                checks[name] = OK
            except Exception as exc:
                log.warning("readiness: %s failed: %s", name, exc)
                checks[name] = f"failing: {type(exc).__name__}"
        return checks

    async def jobs_queued(self) -> int:
        """Jobs queued or running, across every process."""
        async with self._pool.acquire(timeout=self._timeout) as conn:
            return await jobs_repo.queue_depth(conn)

    async def _database(self) -> None:
        await db.ping(self._pool, timeout=self._timeout)

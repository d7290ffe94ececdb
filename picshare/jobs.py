"""The durable job runner: drains the `jobs` table inside the server process.

Jobs are enqueued in the same transaction as the change that needs them, so
an accepted upload always has its job. The runner leases due jobs with
`FOR UPDATE SKIP LOCKED` (several processes can run it), keeps the leases
alive while they run, retries failures with exponential backoff and parks a
job as `failed` with its error once its attempts are spent. A job whose
process died keeps its lease only until it expires; then it is taken up again.

With shards, each shard has its own `jobs` table (a job is enqueued in the
transaction of the shard it belongs with): the runner drains every shard (and
the catalog, when it is a database of its own: payments enqueue there), and
one shard being down holds up only its own jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiojobs

from picshare.config import JobSettings
from storage import jobs_repo
from storage.records import JobRecord
from storage.router import Databases, DatabaseUnavailable
from storage.shards import Shards

log = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """Retrying cannot help (e.g. the input is bad): park the job at once."""


@dataclass(frozen=True, slots=True)
class JobKind:
    run: Callable[[dict[str, Any]], Awaitable[None]]
    # Called once when the job is parked as failed, to leave state consistent.
    on_failed: Callable[[dict[str, Any], str], Awaitable[None]] | None = None
    # At most this many of the kind at once in one runner: a slow kind then
    # cannot take every slot while quick jobs queue behind it.
    max_running: int | None = None


class JobRunner:
    __slots__ = (
        "_db",
        "_elsewhere",
        "_kinds",
        "_running",
        "_scheduler",
        "_settings",
        "_wake",
        "worker_id",
    )

    def __init__(
        self,
        *,
        db: Shards,
        settings: JobSettings,
        scheduler: aiojobs.Scheduler,
        kinds: dict[str, JobKind],
    ) -> None:
        self._db = db
        self._settings = settings
        self._scheduler = scheduler
        self._kinds = kinds
        self._elsewhere: set[str] = set()
        self._wake = asyncio.Event()
        # (shard index, job id) -> kind, of the jobs running here: job ids are
        # unique within their shard's table only.
        self._running: dict[tuple[int, int], str] = {}
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def __repr__(self) -> str:
        return f"<JobRunner {self.worker_id} running={len(self._running)}>"

    def register(self, kinds: dict[str, JobKind]) -> None:
        """Kinds this runner runs (and claims: it claims no other)."""
        self._kinds.update(kinds)
        self._elsewhere.difference_update(kinds)

    def expect(self, names: Iterable[str]) -> None:
        """Kinds another service runs: this process may enqueue them only."""
        self._elsewhere.update(n for n in names if n not in self._kinds)

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds run here."""
        return frozenset(self._kinds)

    def wake(self) -> None:
        """A job was just committed: look now instead of at the next poll."""
        self._wake.set()

    async def enqueue(
        self,
        conn: Any,
        kind: str,
        payload: dict[str, Any],
        *,
        max_attempts: int | None = None,
        delay: float = 0.0,
    ) -> int:
        """Add a job in the caller's transaction (call `wake()` after commit).
        `max_attempts`: more than the setting for a job that must outlast an
        outage of another shard (a follow's mirror). `delay`: seconds before
        it is due (a webhook's next attempt, on its own schedule)."""
        if kind not in self._kinds and kind not in self._elsewhere:
            raise ValueError(f"unknown job kind {kind}")
        attempts = self._settings.max_attempts if max_attempts is None else max_attempts
        return await jobs_repo.enqueue(
            conn, kind, payload, max_attempts=attempts, delay_seconds=delay
        )

    async def start(self) -> None:
        await self._scheduler.spawn(self._poll_loop())
        await self._scheduler.spawn(self._heartbeat_loop())

    async def _poll_loop(self) -> None:
        waiting: set[int] = set()  # shards down: said once per outage, not every poll
        # Until the scheduler closes: on Python 3.11 a cancel that meets the
        # wake-up in `wait_for` can be swallowed, and a claim made then could
        # not be spawned (its jobs would wait out their leases).
        while not self._closing():
            for index, db in enumerate(self._db.everything()):
                try:
                    await self._claim_and_spawn(index, db)
                except asyncio.CancelledError:
                    raise
                except DatabaseUnavailable as exc:
                    if index not in waiting:
                        log.warning("job runner: %s; its jobs wait until it is back", exc)
                    waiting.add(index)
                except Exception:
                    log.exception("job runner: claiming failed; trying again")
                else:
                    if index in waiting:
                        log.info("job runner: %s is back; claiming again", db.primary.label)
                    waiting.discard(index)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)
            self._wake.clear()

    async def _claim_and_spawn(self, index: int, db: Databases) -> None:
        while (free := self._settings.concurrency - len(self._running)) > 0:
            if self._closing():
                return
            full, room = self._kinds_room()
            wanted = [name for name in self._kinds if name not in full]
            if not wanted:
                return  # nothing this process runs (or all of it at its limit)
            # One claim takes up to `free` jobs of the kinds run here that are not full;
            # when a kind has less room than that, one job at a time, so it
            # never gets more than its room.
            limit = free if room >= free else 1
            async with db.transaction() as conn:
                jobs = await jobs_repo.claim(
                    conn,
                    worker=self.worker_id,
                    limit=limit,
                    lease_seconds=self._settings.lease_seconds,
                    running_here=self._running_on(index),
                    kinds=wanted,
                )
            for job in jobs:
                if self._closing():
                    return  # closed while claiming: these leases lapse, the jobs run again
                self._running[(index, job.id)] = job.kind
                await self._scheduler.spawn(self._execute(job, db, index))
            if len(jobs) < limit:
                return  # nothing more is due

    def _closing(self) -> bool:
        # A call, not the property inline: it changes across every await.
        return self._scheduler.closed

    def _running_on(self, index: int) -> list[int]:
        return [job_id for shard, job_id in self._running if shard == index]

    def _kinds_room(self) -> tuple[list[str], int]:
        """The kinds at their max_running, and the least room left among the others."""
        counts: dict[str, int] = {}
        for running in self._running.values():
            counts[running] = counts.get(running, 0) + 1
        full: list[str] = []
        room = self._settings.concurrency
        for name, kind in self._kinds.items():
            if kind.max_running is None:
                continue
            left = kind.max_running - counts.get(name, 0)
            if left <= 0:
                full.append(name)
            else:
                room = min(room, left)
        return full, room

    async def _heartbeat_loop(self) -> None:
        # Extending leases while jobs run lets the lease be short, so a crashed
        # process's jobs are taken up again soon after a restart.
        while True:
            await asyncio.sleep(self._settings.lease_seconds / 3)
            if not self._running:
                continue
            for index, db in enumerate(self._db.everything()):
                running = self._running_on(index)
                if not running:
                    continue
                try:
                    async with db.write() as conn:
                        await jobs_repo.extend_leases(
                            conn,
                            worker=self.worker_id,
                            job_ids=running,
                            lease_seconds=self._settings.lease_seconds,
                        )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job runner: extending leases failed")

    async def _execute(self, job: JobRecord, db: Databases, index: int) -> None:
        try:
            kind = self._kinds.get(job.kind)
            if kind is None:
                await self._park(job, db, f"unknown job kind {job.kind}", None)
            elif job.attempts > job.max_attempts:
                # Its lease expired more often than it may run: it kills its worker.
                await self._park(job, db, job.last_error or "lease expired too often", kind)
            else:
                await self._run(job, db, kind)
        finally:
            self._running.pop((index, job.id), None)
            self._wake.set()

    async def _run(self, job: JobRecord, db: Databases, kind: JobKind) -> None:
        try:
            await kind.run(job.payload)
        except asyncio.CancelledError:
            # Shutdown: give the job back now rather than waiting for its lease.
            await asyncio.shield(self._retry(job, db, 0.0, "interrupted by shutdown"))
            raise
        except PermanentJobError as exc:
            await self._park(job, db, f"{type(exc).__name__}: {exc}", kind)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if job.attempts >= job.max_attempts:
                log.exception("job %s (%s) failed for good", job.id, job.kind)
                await self._park(job, db, error, kind)
            else:
                delay = self.backoff(job.attempts)
                log.warning(
                    "job %s (%s) failed, retry in %.1fs: %s", job.id, job.kind, delay, error
                )
                await self._retry(job, db, delay, error)
        else:
            async with db.write() as conn:
                await jobs_repo.finish(conn, job.id, self.worker_id)

    def backoff(self, attempts: int) -> float:
        base = min(self._settings.backoff_max, self._settings.backoff_base**attempts)
        return base * random.uniform(0.8, 1.2)  # jitter: retries of many jobs do not align

    async def _retry(self, job: JobRecord, db: Databases, delay: float, error: str) -> None:
        async with db.write() as conn:
            await jobs_repo.retry_later(
                conn, job.id, self.worker_id, delay_seconds=delay, error=error[:2000]
            )

    async def _park(self, job: JobRecord, db: Databases, error: str, kind: JobKind | None) -> None:
        async with db.write() as conn:
            parked = await jobs_repo.park_failed(conn, job.id, self.worker_id, error=error[:2000])
        # Only the holder of the lease may declare the work failed: another
        # process that took the job over may have done it after all.
        if parked and kind is not None and kind.on_failed is not None:
            try:
                await kind.on_failed(job.payload, error)
            except Exception:
                log.exception("job %s: on_failed hook failed", job.id)

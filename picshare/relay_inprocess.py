"""The default relay: the durable jobs engine (picshare/jobs.py) is the broker.

The event's outbox row and one job per consumer of its type commit together,
in the change's transaction, and the row is marked sent there and then: the
jobs table is as durable as the outbox, so nothing is left to hand over.
The job runner then runs each consumer with its retries and backoff; a job
whose attempts are spent is parked `failed`: that is the dead letter, which
`run.py events retry` queues again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from picshare.consumers import Consumer
from picshare.domain_events import DomainEvent
from picshare.jobs import JobKind, JobRunner
from picshare.relay import DeadEvent
from storage import jobs_repo, outbox_repo
from storage.db import Connection
from storage.router import PRIMARY
from storage.shards import Shards

KIND_PREFIX = "event:"


class InProcessRelay:
    __slots__ = ("_by_type", "_db", "_jobs")

    def __init__(
        self,
        *,
        db: Shards,
        jobs: JobRunner,
        subscribed: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """`subscribed`: the site's consumers and their types: each event gets
        a job per consumer of its type, also one that another process runs
        (a service's own consumers, picshare/services.py), which claims it."""
        self._db = db
        self._jobs = jobs
        self._by_type: dict[str, list[str]] = {}
        for name, types in (subscribed or {}).items():
            self._add(name, types)
        jobs.expect(KIND_PREFIX + name for name in subscribed or {})

    def __repr__(self) -> str:
        return (
            f"<InProcessRelay consumers={sorted({n for v in self._by_type.values() for n in v})}>"
        )

    def register(self, consumers: list[Consumer]) -> None:
        for consumer in consumers:
            self._add(consumer.name, consumer.types)
        self._jobs.register({KIND_PREFIX + c.name: _job_kind(c) for c in consumers})

    def _add(self, name: str, types: frozenset[str]) -> None:
        for event_type in types:
            names = self._by_type.setdefault(event_type, [])
            if name not in names:
                names.append(name)

    async def written(self, conn: Connection, event: DomainEvent) -> None:
        payload = {"event": event.to_json()}
        for name in self._by_type.get(event.type, []):
            await self._jobs.enqueue(conn, KIND_PREFIX + name, payload)
        await outbox_repo.mark_sent(conn, [event.id])

    def state(self) -> str:
        return "ok"  # the jobs table is in the database, which /readyz checks

    def wake(self) -> None:
        self._jobs.wake()

    async def start(self) -> None:
        """The job runner is started by the app (it runs other jobs too)."""

    async def close(self) -> None:
        """The job runner is closed by the app."""

    async def dead(self) -> list[DeadEvent]:
        found: list[DeadEvent] = []
        for db in self._db.everything():
            async with db.read(PRIMARY) as conn:
                jobs = await jobs_repo.failed_of(conn, kind_prefix=KIND_PREFIX)
            found += [
                DeadEvent(
                    consumer=job.kind.removeprefix(KIND_PREFIX),
                    event=DomainEvent.from_json(job.payload["event"]),
                    attempts=job.attempts,
                    error=job.last_error or "",
                )
                for job in jobs
            ]
        return sorted(found, key=lambda dead: dead.event.id)

    async def retry(self, event_id: int | None) -> int:
        replayed = 0
        for db in self._db.everything():
            async with db.transaction() as conn:
                jobs = await jobs_repo.failed_of(conn, kind_prefix=KIND_PREFIX)
                ids = [
                    job.id
                    for job in jobs
                    if event_id is None or int(job.payload["event"]["id"]) == event_id
                ]
                if ids:
                    replayed += await jobs_repo.requeue(conn, ids)
        if replayed:
            self._jobs.wake()
        return replayed


def _job_kind(consumer: Consumer) -> JobKind:
    async def run(payload: dict[str, Any]) -> None:
        await consumer.handle(DomainEvent.from_json(payload["event"]))

    dead = consumer.on_dead
    if dead is None:
        return JobKind(run)

    async def on_failed(payload: dict[str, Any], error: str) -> None:
        await dead(DomainEvent.from_json(payload["event"]), error)

    return JobKind(run, on_failed)

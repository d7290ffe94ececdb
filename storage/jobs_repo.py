"""SQL for the durable job table: enqueue in the caller's transaction, claim
with a lease (`FOR UPDATE SKIP LOCKED`), finish, retry later, or park as failed."""

from __future__ import annotations

from typing import Any

from storage.db import Connection
from storage.records import JobRecord

_COLUMNS = (
    "id, kind, payload, status, attempts, max_attempts, run_after, locked_by, locked_until, "
    "last_error, created_at, finished_at"
)


async def enqueue(
    conn: Connection,
    kind: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
    delay_seconds: float = 0.0,
) -> int:
    job_id = await conn.fetchval(
        "INSERT INTO jobs (kind, payload, max_attempts, run_after) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id",
        kind,
        payload,
        max_attempts,
        delay_seconds,
    )
    return int(job_id)


async def claim(
    conn: Connection,
    *,
    worker: str,
    limit: int,
    lease_seconds: float,
    running_here: list[int] | None = None,
    kinds: list[str] | None = None,
) -> list[JobRecord]:
    """Lease up to `limit` due jobs: queued ones whose time has come, and running
    ones whose lease ran out (their worker died); only of the `kinds` when
    given (a runner takes only what it can run: another service's jobs wait
    for that service)."""
    rows = await conn.fetch(
        f"""WITH due AS (
                SELECT id FROM jobs
                WHERE ((status = 'queued' AND run_after <= now())
                   OR (status = 'running' AND locked_until < now()))
                  -- A lease of ours that lapsed (a stalled heartbeat) is not
                  -- taken again while we still run it.
                  AND NOT (id = ANY($4::bigint[]))
                  AND ($5::text[] IS NULL OR kind = ANY($5::text[]))
                ORDER BY run_after, id
                LIMIT $1
                FOR UPDATE SKIP LOCKED)
            UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, locked_by = $2,
                   locked_until = now() + make_interval(secs => $3), updated_at = now()
            FROM due WHERE j.id = due.id
            RETURNING {", ".join("j." + c.strip() for c in _COLUMNS.split(","))}""",
        limit,
        worker,
        lease_seconds,
        running_here or [],
        kinds,
    )
    return [JobRecord.from_row(r) for r in rows]


async def extend_leases(
    conn: Connection, *, worker: str, job_ids: list[int], lease_seconds: float
) -> None:
    await conn.execute(
        "UPDATE jobs SET locked_until = now() + make_interval(secs => $3) "
        "WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'running'",
        job_ids,
        worker,
        lease_seconds,
    )


async def finish(conn: Connection, job_id: int, worker: str) -> None:
    await conn.execute(
        "UPDATE jobs SET status = 'done', finished_at = now(), updated_at = now(), "
        "locked_until = NULL WHERE id = $1 AND locked_by = $2",
        job_id,
        worker,
    )


async def retry_later(
    conn: Connection, job_id: int, worker: str, *, delay_seconds: float, error: str
) -> None:
    await conn.execute(
        "UPDATE jobs SET status = 'queued', run_after = now() + make_interval(secs => $3), "
        "last_error = $4, locked_by = NULL, locked_until = NULL, updated_at = now() "
        "WHERE id = $1 AND locked_by = $2",
        job_id,
        worker,
        delay_seconds,
        error,
    )


async def park_failed(conn: Connection, job_id: int, worker: str, *, error: str) -> bool:
    """Park the job; False when this worker no longer holds it (someone else does)."""
    result = await conn.execute(
        "UPDATE jobs SET status = 'failed', last_error = $3, finished_at = now(), "
        "locked_until = NULL, updated_at = now() WHERE id = $1 AND locked_by = $2",
        job_id,
        worker,
        error,
    )
    return bool(result == "UPDATE 1")


async def list_jobs(conn: Connection, *, status: str | None, limit: int) -> list[JobRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR status = $1) "
        "ORDER BY id DESC LIMIT $2",
        status,
        limit,
    )
    return [JobRecord.from_row(r) for r in rows]


async def queue_depth(conn: Connection) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
    )


async def failed_of(conn: Connection, *, kind_prefix: str) -> list[JobRecord]:
    """Parked jobs whose kind starts with `kind_prefix`, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM jobs WHERE status = 'failed' AND starts_with(kind, $1) "
        "ORDER BY id",
        kind_prefix,
    )
    return [JobRecord.from_row(r) for r in rows]


async def requeue(conn: Connection, job_ids: list[int]) -> int:
    """Parked jobs run again, with their attempts afresh."""
    result = await conn.execute(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_after = now(), "
        "finished_at = NULL, locked_by = NULL, locked_until = NULL, updated_at = now() "
        "WHERE id = ANY($1::bigint[]) AND status = 'failed'",
        job_ids,
    )
    return int(result.split()[-1])

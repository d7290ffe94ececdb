"""SQL for domain events: the outbox (written in the change's transaction,
claimed by a relay with `FOR UPDATE SKIP LOCKED`, marked sent), what each
consumer has processed, and the `counters` consumer's table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Connection


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime


async def add(conn: Connection, event_type: str, data: dict[str, Any]) -> OutboxRow:
    row = await conn.fetchrow(
        "INSERT INTO outbox (type, data) VALUES ($1, $2) RETURNING id, type, data, created_at",
        event_type,
        data,
    )
    assert row is not None
    return OutboxRow(row["id"], row["type"], row["data"], row["created_at"])


async def claim_unsent(conn: Connection, *, limit: int) -> list[OutboxRow]:
    """The oldest unsent events, locked until the caller's transaction ends:
    relays in several processes each take other rows."""
    rows = await conn.fetch(
        "SELECT id, type, data, created_at FROM outbox WHERE sent_at IS NULL "
        "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [OutboxRow(r["id"], r["type"], r["data"], r["created_at"]) for r in rows]


async def mark_sent(conn: Connection, ids: list[int]) -> None:
    await conn.execute(
        "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[]) AND sent_at IS NULL", ids
    )


async def backlog(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


async def first_time(conn: Connection, consumer: str, event_id: int) -> bool:
    """Record that `consumer` processed the event, in the caller's transaction
    (the one of its work); False if it already had."""
    done = await conn.fetchval(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id,
    )
    return bool(done)


async def processed(conn: Connection, consumer: str, event_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT true FROM processed_events WHERE consumer = $1 AND event_id = $2",
            consumer,
            event_id,
        )
    )


async def count_event(conn: Connection, event_type: str) -> None:
    await conn.execute(
        "INSERT INTO event_counts (type, count) VALUES ($1, 1) "
        "ON CONFLICT (type) DO UPDATE SET count = event_counts.count + 1",
        event_type,
    )


async def event_counts(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT type, count FROM event_counts ORDER BY type")
    return {r["type"]: int(r["count"]) for r in rows}


async def prune(conn: Connection, *, older_than_seconds: float) -> tuple[int, int]:
    """Forget sent events and consumers' records older than that; an unsent
    event stays, however old (the broker may have been away that long).
    How many outbox rows and processed records went."""
    sent = await conn.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL "
        "AND created_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    processed = await conn.execute(
        "DELETE FROM processed_events WHERE processed_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(sent.split()[-1]), int(processed.split()[-1])

"""SQL for users' webhooks (migration 0013): endpoints, the message of each
(event, endpoint) with its attempts, and the delivery log. Every row lives on
its user's shard; ids carry the user's logical shard."""

from __future__ import annotations

from storage.db import Connection
from storage.ids import shard_of
from storage.records import DeliveryRecord, EndpointRecord, MessageRecord

_MAX_ID = 9_223_372_036_854_775_807

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


_ENDPOINT = "id, user_id, url, events, secret, created_at, disabled_at, disabled_reason"
_MESSAGE = "endpoint_id, event_id, event_type, body, attempts, state"
_DELIVERY = (
    "id, endpoint_id, event_id, event_type, attempt, status, duration_ms, error, "
    "next_attempt_at, created_at"
)


async def lock_user(conn: Connection, user_id: int) -> bool:
    """Serialize a user's registrations (the count below stays true until commit)."""
    return bool(await conn.fetchval("SELECT true FROM users WHERE id = $1 FOR UPDATE", user_id))


async def count_of_user(conn: Connection, user_id: int) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM webhook_endpoints WHERE user_id = $1", user_id)
    )


async def add_endpoint(
    conn: Connection, *, user_id: int, url: str, events: list[str], secret: str
) -> EndpointRecord:
    row = await conn.fetchrow(
        "INSERT INTO webhook_endpoints (id, user_id, url, events, secret) "
        f"VALUES (picshare_next_id($5), $1, $2, $3, $4) RETURNING {_ENDPOINT}",
        user_id,
        url,
        events,
        secret,
        shard_of(user_id),  # the endpoint lives with its user
    )
    assert row is not None
    return EndpointRecord.from_row(row)


async def endpoints_of(conn: Connection, user_id: int) -> list[EndpointRecord]:
    rows = await conn.fetch(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE user_id = $1 ORDER BY id", user_id
    )
    return [EndpointRecord.from_row(r) for r in rows]


async def endpoint(conn: Connection, endpoint_id: int) -> EndpointRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    return None if row is None else EndpointRecord.from_row(row)


async def delete_endpoint(conn: Connection, *, user_id: int, endpoint_id: int) -> bool:
    result = await conn.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2", endpoint_id, user_id
    )
    return bool(result == "DELETE 1")


async def subscribed(conn: Connection, user_id: int, event_type: str) -> list[EndpointRecord]:
    """The user's endpoints that take this type and are not disabled."""
    rows = await conn.fetch(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints "
        "WHERE user_id = $1 AND $2 = ANY(events) AND disabled_at IS NULL ORDER BY id",
        user_id,
        event_type,
    )
    return [EndpointRecord.from_row(r) for r in rows]


async def photo_owner(conn: Connection, photo_id: int) -> int | None:
    value = await conn.fetchval("SELECT owner_id FROM photos WHERE id = $1", photo_id)
    return None if value is None else int(value)


async def add_message(
    conn: Connection, *, endpoint_id: int, event_id: int, event_type: str, body: str
) -> bool:
    """The message of one event to one endpoint; False if it exists already
    (a redelivered event queues no second delivery)."""
    added = await conn.fetchval(
        "INSERT INTO webhook_messages (endpoint_id, event_id, event_type, body) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
        endpoint_id,
        event_id,
        event_type,
        body,
    )
    return bool(added)


async def message(conn: Connection, endpoint_id: int, event_id: int) -> MessageRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_MESSAGE} FROM webhook_messages WHERE endpoint_id = $1 AND event_id = $2",
        endpoint_id,
        event_id,
    )
    return None if row is None else MessageRecord.from_row(row)


async def record_attempt(
    conn: Connection, *, endpoint_id: int, event_id: int, attempt: int, state: str
) -> bool:
    """Count attempt number `attempt` once: False when it was counted already
    (a second run of the same job) or the message is no longer pending."""
    result = await conn.execute(
        "UPDATE webhook_messages SET attempts = $3, state = $4, updated_at = now() "
        "WHERE endpoint_id = $1 AND event_id = $2 AND attempts = $3 - 1 AND state = 'pending'",
        endpoint_id,
        event_id,
        attempt,
        state,
    )
    return bool(result == "UPDATE 1")


async def stop_pending(conn: Connection, endpoint_id: int, event_id: int) -> None:
    """A message to a disabled endpoint: nothing more is sent."""
    await conn.execute(
        "UPDATE webhook_messages SET state = 'failed', updated_at = now() "
        "WHERE endpoint_id = $1 AND event_id = $2 AND state = 'pending'",
        endpoint_id,
        event_id,
    )


async def disable(conn: Connection, endpoint_id: int, reason: str) -> None:
    await conn.execute(
        "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2 "
        "WHERE id = $1 AND disabled_at IS NULL",
        endpoint_id,
        reason,
    )


async def log_delivery(
    conn: Connection,
    *,
    endpoint_id: int,
    event_id: int,
    event_type: str,
    attempt: int,
    status: int | None,
    duration_ms: int,
    error: str,
    next_delay: float | None,
    keep: int,
) -> None:
    """Log one attempt, and trim the endpoint's log to its newest `keep`."""
    await conn.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, attempt, "
        "status, duration_ms, error, next_attempt_at) VALUES (picshare_next_id($9), $1, $2, "
        "$3, $4, $5, $6, $7, now() + make_interval(secs => $8::double precision))",
        endpoint_id,
        event_id,
        event_type,
        attempt,
        status,
        duration_ms,
        error,
        next_delay,
        shard_of(endpoint_id),
    )
    await conn.execute(
        "DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND id < ("
        "  SELECT id FROM webhook_deliveries WHERE endpoint_id = $1"
        "  ORDER BY id DESC OFFSET $2 - 1 LIMIT 1)",
        endpoint_id,
        keep,
    )


async def deliveries(
    conn: Connection, endpoint_id: int, *, before: int | None, limit: int
) -> list[DeliveryRecord]:
    rows = await conn.fetch(
        f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE endpoint_id = $1 AND id < $2 "
        "ORDER BY id DESC LIMIT $3",
        endpoint_id,
        before or _MAX_ID,
        limit,
    )
    return [DeliveryRecord.from_row(r) for r in rows]

"""SQL for Idempotency-Key claims and the answers stored under them.

A row is a user's key: `in_flight` while its first request runs (held by a
random `token` until `lease_until`), then `done` with the answer. Every
change after the claim names the token, so a holder whose lease was taken
over cannot overwrite or delete the new holder's row.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Connection


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    fingerprint: str
    state: str  # "in_flight" | "done"
    status: int | None
    content_type: str | None
    location: str | None
    body: bytes | None
    lease_expired: bool


async def claim(
    conn: Connection,
    *,
    user_id: int,
    key: str,
    fingerprint: str,
    token: int,
    lease_seconds: float,
    ttl_seconds: float,
) -> bool:
    """Take the key: a new row, or one whose time is up (expired, or an
    in-flight claim of the same request past its lease). False: someone holds it."""
    row = await conn.fetchval(
        """
        INSERT INTO idempotency_keys AS k
            (user_id, key, fingerprint, state, token, lease_until, expires_at)
        VALUES ($1, $2, $3, 'in_flight', $4,
                now() + make_interval(secs => $5), now() + make_interval(secs => $6))
        ON CONFLICT (user_id, key) DO UPDATE SET
            fingerprint = EXCLUDED.fingerprint, state = 'in_flight', token = EXCLUDED.token,
            lease_until = EXCLUDED.lease_until, status = NULL, content_type = NULL,
            location = NULL, body = NULL, created_at = now(), expires_at = EXCLUDED.expires_at
        WHERE k.expires_at <= now()
           OR (k.state = 'in_flight' AND k.lease_until <= now()
               AND k.fingerprint = EXCLUDED.fingerprint)
        RETURNING 1
        """,
        user_id,
        key,
        fingerprint,
        token,
        float(lease_seconds),
        float(ttl_seconds),
    )
    return row is not None


async def find(conn: Connection, *, user_id: int, key: str) -> IdempotencyRecord | None:
    """The key's row, unless it has expired (an expired key is as good as absent)."""
    row = await conn.fetchrow(
        """
        SELECT fingerprint, state, status, content_type, location, body,
               lease_until <= now() AS lease_expired
        FROM idempotency_keys
        WHERE user_id = $1 AND key = $2 AND expires_at > now()
        """,
        user_id,
        key,
    )
    if row is None:
        return None
    return IdempotencyRecord(
        fingerprint=row["fingerprint"],
        state=row["state"],
        status=row["status"],
        content_type=row["content_type"],
        location=row["location"],
        body=row["body"],
        lease_expired=row["lease_expired"],
    )


async def complete(
    conn: Connection,
    *,
    user_id: int,
    key: str,
    token: int,
    status: int,
    content_type: str | None,
    location: str | None,
    body: bytes,
) -> bool:
    result = await conn.execute(
        """
        UPDATE idempotency_keys
        SET state = 'done', status = $4, content_type = $5, location = $6, body = $7
        WHERE user_id = $1 AND key = $2 AND token = $3 AND state = 'in_flight'
        """,
        user_id,
        key,
        token,
        status,
        content_type,
        location,
        body,
    )
    return bool(result == "UPDATE 1")


async def release(conn: Connection, *, user_id: int, key: str, token: int) -> None:
    await conn.execute(
        """
        DELETE FROM idempotency_keys
        WHERE user_id = $1 AND key = $2 AND token = $3 AND state = 'in_flight'
        """,
        user_id,
        key,
        token,
    )


async def extend(
    conn: Connection, *, user_id: int, key: str, token: int, lease_seconds: float
) -> bool:
    result = await conn.execute(
        """
        UPDATE idempotency_keys SET lease_until = now() + make_interval(secs => $4)
        WHERE user_id = $1 AND key = $2 AND token = $3 AND state = 'in_flight'
        """,
        user_id,
        key,
        token,
        float(lease_seconds),
    )
    return bool(result == "UPDATE 1")


async def sweep(conn: Connection, *, limit: int) -> int:
    """Delete up to `limit` expired keys (bounded, so one sweep stays short)."""
    result = await conn.execute(
        """
        DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1))
        """,
        limit,
    )
    return int(result.split()[-1])

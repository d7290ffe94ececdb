"""SQL for the user directory (catalog only, migration 0007): usernames and
emails unique across shards.

Sign-up claims a row here first (with the id the user will have), then
inserts the user on its shard. A claim whose user row never arrived (its
process died in between) is stale once older than `STALE_AFTER`: a later
sign-up may take it over (picshare/users.py)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from storage.db import Connection

# Far longer than any sign-up takes between its claim and its user row.
STALE_AFTER_SECONDS = 60


class NameTaken(Exception):
    """A claim of the username or email exists; `field` says which."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True, slots=True)
class Claim:
    user_id: int
    username: str
    email: str
    old: bool  # older than STALE_AFTER_SECONDS: stale, if its user row is missing


async def claim(conn: Connection, *, user_id: int, username: str, email: str) -> None:
    """Claim the name and email for `user_id`; NameTaken if either is claimed."""
    try:
        await conn.execute(
            "INSERT INTO user_directory (user_id, username, email) VALUES ($1, $2, $3)",
            user_id,
            username,
            email,
        )
    except asyncpg.UniqueViolationError as exc:
        field = "email" if "email" in (exc.constraint_name or "") else "username"
        raise NameTaken(field) from exc


async def conflicting(conn: Connection, *, username: str, email: str) -> list[Claim]:
    """The claims holding this username or this email."""
    rows = await conn.fetch(
        "SELECT user_id, username, email,"
        f" created_at < now() - interval '{STALE_AFTER_SECONDS} seconds' AS old"
        " FROM user_directory WHERE lower(username) = lower($1) OR lower(email) = lower($2)",
        username,
        email,
    )
    return [Claim(r["user_id"], r["username"], r["email"], r["old"]) for r in rows]


async def drop_stale(conn: Connection, user_id: int) -> bool:
    """Delete `user_id`'s claim if it is (still) old; whether it was deleted."""
    result = await conn.execute(
        "DELETE FROM user_directory WHERE user_id = $1"
        f" AND created_at < now() - interval '{STALE_AFTER_SECONDS} seconds'",
        user_id,
    )
    return bool(result.endswith(" 1"))


async def release(conn: Connection, user_id: int) -> None:
    """Give up `user_id`'s claim (its sign-up failed)."""
    await conn.execute("DELETE FROM user_directory WHERE user_id = $1", user_id)


async def holds(conn: Connection, user_id: int) -> bool:
    """Whether `user_id`'s claim is still there (not taken over)."""
    found = await conn.fetchval("SELECT 1 FROM user_directory WHERE user_id = $1", user_id)
    return found is not None

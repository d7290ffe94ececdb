"""SQL for users and their tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Connection
from storage.ids import shard_of
from storage.records import UserRecord
from storage.social_repo import follows_sql, liked_sql

_USER_COLUMNS = (
    "id, username, email, password_hash, display_name, bio, private, settings, "
    "photo_count, follower_count, following_count, created_at"
)


class DuplicateUser(Exception):
    """The username or email is taken; `field` says which."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


async def next_user_id(conn: Connection, logical: int) -> int:
    """A new user's id, naming the logical shard the user belongs to."""
    value = await conn.fetchval("SELECT picshare_next_id($1)", logical)
    assert value is not None
    return int(value)


async def insert_user(
    conn: Connection, *, user_id: int, username: str, email: str, password_hash: str
) -> UserRecord:
    try:
        row = await conn.fetchrow(
            f"INSERT INTO users (id, username, email, password_hash, display_name) "
            f"VALUES ($1, $2, $3, $4, $2) RETURNING {_USER_COLUMNS}",
            user_id,
            username,
            email,
            password_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        field = "email" if "email" in (exc.constraint_name or "") else "username"
        raise DuplicateUser(field) from exc
    assert row is not None
    return UserRecord.from_row(row)


async def user_by_id(conn: Connection, user_id: int) -> UserRecord | None:
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return None if row is None else UserRecord.from_row(row)


async def owner_seen_by(
    conn: Connection, owner_id: int, viewer_id: int, photo_id: int, *, likes_here: bool = True
) -> tuple[UserRecord, bool, bool] | None:
    """A photo's owner, whether the viewer likes the photo (false where likes
    are not here) and whether the viewer follows the owner: one round trip
    on the owner's shard."""
    liked = liked_sql("$2", "$3") if likes_here else "($3::bigint IS NULL AND false)"
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS}, {liked} AS liked, "
        f"{follows_sql('$2', '$1')} AS follows FROM users WHERE id = $1",
        owner_id,
        viewer_id,
        photo_id,
    )
    if row is None:
        return None
    return UserRecord.from_row(row), bool(row["liked"]), bool(row["follows"])


async def users_by_ids(conn: Connection, user_ids: list[int]) -> list[UserRecord]:
    """The users among `user_ids` that live on this database (any order)."""
    rows = await conn.fetch(
        f"SELECT {_USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[])", user_ids
    )
    return [UserRecord.from_row(r) for r in rows]


async def user_by_username(conn: Connection, username: str) -> UserRecord | None:
    if "\x00" in username:
        return None  # PostgreSQL text cannot hold NUL, so no name has one
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE lower(username) = lower($1)", username
    )
    return None if row is None else UserRecord.from_row(row)


async def delete_user(conn: Connection, user_id: int) -> None:
    """Undo a sign-up whose directory claim was lost (its tokens go with it)."""
    await conn.execute("DELETE FROM users WHERE id = $1", user_id)


async def update_user(conn: Connection, user_id: int, changes: dict[str, Any]) -> UserRecord | None:
    allowed = ("display_name", "bio", "private", "settings")
    names = [name for name in allowed if name in changes]
    if not names:
        return await user_by_id(conn, user_id)
    # Column names come from the fixed list above; values are bound parameters.
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"UPDATE users SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_USER_COLUMNS}",
        user_id,
        *(changes[name] for name in names),
    )
    return None if row is None else UserRecord.from_row(row)


async def insert_token(
    conn: Connection, *, user_id: int, token_hash: bytes, kind: str, expires_at: datetime
) -> None:
    # Its id names the user's shard, as every row that lives with a user.
    await conn.execute(
        "INSERT INTO auth_tokens (id, user_id, token_hash, kind, expires_at) "
        "VALUES (picshare_next_id($5), $1, $2, $3, $4)",
        user_id,
        token_hash,
        kind,
        expires_at,
        shard_of(user_id),
    )


async def user_by_token(conn: Connection, token_hash: bytes, kind: str) -> UserRecord | None:
    row = await conn.fetchrow(
        f"SELECT {', '.join('u.' + c.strip() for c in _USER_COLUMNS.split(','))} "
        "FROM auth_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE t.token_hash = $1 AND t.kind = $2 AND t.revoked_at IS NULL AND t.expires_at > now()",
        token_hash,
        kind,
    )
    return None if row is None else UserRecord.from_row(row)


async def revoke_token(conn: Connection, token_hash: bytes) -> bool:
    result = await conn.execute(
        "UPDATE auth_tokens SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash,
    )
    return bool(result.endswith(" 1"))


async def count_photos(conn: Connection, user_id: int, delta: int) -> int | None:
    """Move the user's photo_count by `delta` (where their photos live in a
    database of their own: a job's, picshare/photos.py); the count after, or
    None if there is no such user or it would go below zero (a deletion's job
    run before its upload's: retried)."""
    found = await conn.fetchval(
        "UPDATE users SET photo_count = photo_count + $2 "
        "WHERE id = $1 AND photo_count + $2 >= 0 RETURNING photo_count",
        user_id,
        delta,
    )
    return None if found is None else int(found)

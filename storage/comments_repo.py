"""SQL for the `comments` table alone (the COMMENTS table group): no statement
here names another group's table, so it runs wherever comments live
(`Shards.comments_of`), beside the photo or in a database of their own.

A comment carries its author's name (denormalized: a list needs no users),
and its id carries its photo's logical shard, so the id alone leads to it
wherever comments live.
"""

from __future__ import annotations

from storage.db import Connection
from storage.ids import shard_of
from storage.records import CommentRecord

_COMMENT = "id, photo_id, user_id, username, display_name, text, created_at"
_MAX_ID = 9_223_372_036_854_775_807


async def add(
    conn: Connection, *, photo_id: int, user_id: int, username: str, display_name: str, text: str
) -> CommentRecord:
    # The photo's logical shard in the id: the comment lives with its photo,
    # and its id alone leads there (a deletion by id, storage/shards.py).
    row = await conn.fetchrow(
        f"INSERT INTO comments (id, photo_id, user_id, username, display_name, text) "
        f"VALUES (picshare_next_id($6), $1, $2, $3, $4, $5) RETURNING {_COMMENT}",
        photo_id,
        user_id,
        username,
        display_name,
        text,
        shard_of(photo_id),
    )
    assert row is not None
    return CommentRecord.from_row(row)


async def by_id(conn: Connection, comment_id: int) -> CommentRecord | None:
    row = await conn.fetchrow(f"SELECT {_COMMENT} FROM comments WHERE id = $1", comment_id)
    return None if row is None else CommentRecord.from_row(row)


async def remove(conn: Connection, comment_id: int) -> bool:
    deleted = await conn.fetchval("DELETE FROM comments WHERE id = $1 RETURNING true", comment_id)
    return bool(deleted)


async def page(
    conn: Connection, *, photo_id: int, before: int | None, limit: int
) -> list[CommentRecord]:
    rows = await conn.fetch(
        f"SELECT {_COMMENT} FROM comments WHERE photo_id = $1 AND id < $2 "
        "ORDER BY id DESC LIMIT $3",
        photo_id,
        before or _MAX_ID,
        limit,
    )
    return [CommentRecord.from_row(r) for r in rows]


async def latest(conn: Connection, photo_ids: list[int], limit: int) -> list[CommentRecord]:
    """The newest `limit` comments of each photo among `photo_ids` on this
    database, in one statement (a lateral probe of the photo_id index per photo)."""
    rows = await conn.fetch(
        f"SELECT c.* FROM unnest($1::bigint[]) AS p(id) CROSS JOIN LATERAL "
        f"(SELECT {_COMMENT} FROM comments WHERE photo_id = p.id "
        "ORDER BY id DESC LIMIT $2) AS c",
        photo_ids,
        limit,
    )
    return [CommentRecord.from_row(r) for r in rows]


async def rename(conn: Connection, user_id: int, display_name: str) -> None:
    """The author's new display name in their comments' copies."""
    await conn.execute(
        "UPDATE comments SET display_name = $2 WHERE user_id = $1 AND display_name <> $2",
        user_id,
        display_name,
    )


async def forget_photo(conn: Connection, photo_id: int) -> int:
    """A deleted photo's comments (where no key's cascade reaches them); how many."""
    result = await conn.execute("DELETE FROM comments WHERE photo_id = $1", photo_id)
    return int(result.split()[-1])

"""SQL for the `likes` table alone (the LIKES table group): no statement here
names another group's table, so it runs wherever likes live
(`Shards.likes_of`), beside the photo or in a database of their own.

The key (photo_id, user_id) answers "who liked this photo"; `likes_user`
(user_id, photo_id) answers "which of these photos did this user like".
"""

from __future__ import annotations

from storage.db import Connection


async def add(conn: Connection, photo_id: int, user_id: int) -> bool:
    """Whether this call added the like (a repeat adds nothing)."""
    added = await conn.fetchval(
        "INSERT INTO likes (photo_id, user_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        photo_id,
        user_id,
    )
    return bool(added)


async def remove(conn: Connection, photo_id: int, user_id: int) -> bool:
    """Whether this call removed the like."""
    removed = await conn.fetchval(
        "DELETE FROM likes WHERE photo_id = $1 AND user_id = $2 RETURNING true",
        photo_id,
        user_id,
    )
    return bool(removed)


async def liked_among(conn: Connection, user_id: int, photo_ids: list[int]) -> set[int]:
    """Which of `photo_ids` the user likes: one probe of likes_user per page."""
    rows = await conn.fetch(
        "SELECT photo_id FROM likes WHERE user_id = $1 AND photo_id = ANY($2::bigint[])",
        user_id,
        photo_ids,
    )
    return {int(r["photo_id"]) for r in rows}


async def forget_photo(conn: Connection, photo_id: int) -> int:
    """A deleted photo's likes (where no key's cascade reaches them); how many."""
    result = await conn.execute("DELETE FROM likes WHERE photo_id = $1", photo_id)
    return int(result.split()[-1])

"""SQL for notifications: one row per event for its recipient."""

from __future__ import annotations

from storage.db import Connection, sql_literal
from storage.ids import shard_of
from storage.records import NotificationKind, NotificationRecord

_COLUMNS = (
    "id, user_id, kind, actor_id, actor_username, photo_id, comment_id, text, read_at, created_at"
)
_MAX_ID = 9_223_372_036_854_775_807

# Which repeat each kind silently absorbs, by the partial unique index that
# defines it. Anything else that collides (an id, say) must raise, not
# vanish: so every ON CONFLICT names its target.
_LIKE, _FOLLOW, _REQUEST, _PHOTO = (
    sql_literal(k)
    for k in (
        NotificationKind.LIKE,
        NotificationKind.FOLLOW,
        NotificationKind.FOLLOW_REQUEST,
        NotificationKind.PHOTO,
    )
)
_FOLLOWS_ONCE = f"ON CONFLICT (user_id, actor_id) WHERE kind IN ({_FOLLOW}, {_REQUEST}) DO NOTHING"
_ONCE = {
    NotificationKind.LIKE: f"ON CONFLICT (user_id, actor_id, photo_id) WHERE kind = {_LIKE} "
    "DO NOTHING",
    NotificationKind.FOLLOW: _FOLLOWS_ONCE,
    NotificationKind.FOLLOW_REQUEST: _FOLLOWS_ONCE,
    NotificationKind.PHOTO: f"ON CONFLICT (user_id, photo_id) WHERE kind = {_PHOTO} DO NOTHING",
}


async def add(
    conn: Connection,
    *,
    user_id: int,
    kind: NotificationKind,
    actor_id: int,
    actor_username: str,
    text: str,
    photo_id: int | None = None,
    comment_id: int | None = None,
) -> NotificationRecord | None:
    """Insert unless it would repeat one already there (a like after an unlike)."""
    if user_id == actor_id:
        return None  # nobody is notified of their own actions
    # The clause comes from the fixed table above, never from input. The id
    # carries the recipient's logical shard: a notification lives with them.
    row = await conn.fetchrow(
        f"INSERT INTO notifications (id, user_id, kind, actor_id, actor_username, photo_id, "
        f"comment_id, text) VALUES (picshare_next_id($8), $1, $2, $3, $4, $5, $6, $7) "
        f"{_ONCE.get(kind, '')} RETURNING {_COLUMNS}",
        user_id,
        kind,
        actor_id,
        actor_username,
        photo_id,
        comment_id,
        text,
        shard_of(user_id),
    )
    return None if row is None else NotificationRecord.from_row(row)


async def follower_ids(conn: Connection, user_id: int) -> list[int]:
    """Who follows `user_id` (read on that user's shard, where every follow of
    them has its followee-side row): the audience of their new photo."""
    rows = await conn.fetch("SELECT follower_id FROM follows WHERE followee_id = $1", user_id)
    return [int(r["follower_id"]) for r in rows]


async def add_photo_ready(
    conn: Connection,
    *,
    user_ids: list[int],
    actor_id: int,
    actor_username: str,
    photo_id: int,
    text: str,
) -> list[NotificationRecord]:
    """A new photo: one notification for each of `user_ids` (followers whose
    rows live in this database), in one statement. A repeat (a retried job)
    finds the rows there: only the ones written now are returned."""
    rows = await conn.fetch(
        "INSERT INTO notifications (id, user_id, kind, actor_id, actor_username, photo_id, text) "
        f"SELECT picshare_next_id(t.logical), t.user_id, {_PHOTO}, $3, $4, $5, $6 "
        "FROM unnest($1::bigint[], $2::integer[]) AS t (user_id, logical) "
        # One order: two retries of the same job never deadlock on the index.
        f"ORDER BY t.user_id {_ONCE[NotificationKind.PHOTO]} RETURNING {_COLUMNS}",
        user_ids,
        [shard_of(u) for u in user_ids],  # each recipient's own logical shard
        actor_id,
        actor_username,
        photo_id,
        text,
    )
    return [NotificationRecord.from_row(r) for r in rows]


async def remove(conn: Connection, *, user_id: int, actor_id: int, kind: NotificationKind) -> None:
    await conn.execute(
        "DELETE FROM notifications WHERE user_id = $1 AND actor_id = $2 AND kind = $3",
        user_id,
        actor_id,
        kind,
    )


async def page(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[NotificationRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND id < $2 "
        "ORDER BY id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [NotificationRecord.from_row(r) for r in rows]


async def unread_count(conn: Connection, user_id: int) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id
        )
    )


async def mark_read(conn: Connection, user_id: int, up_to: int | None) -> int:
    result = await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL "
        "AND ($2::bigint IS NULL OR id <= $2)",
        user_id,
        up_to,
    )
    return int(result.split()[-1])


async def since(conn: Connection, user_id: int, after: int, limit: int) -> list[NotificationRecord]:
    """Notifications newer than `after`, oldest first (a socket's replay)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM notifications "
        "WHERE user_id = $1 AND id > $2 ORDER BY id DESC LIMIT $3) n ORDER BY id",
        user_id,
        after,
        limit,
    )
    return [NotificationRecord.from_row(r) for r in rows]


async def forget_photo(conn: Connection, photo_id: int) -> int:
    """Delete every notification about a deleted photo in this database; how many."""
    result = await conn.execute("DELETE FROM notifications WHERE photo_id = $1", photo_id)
    return int(result.split()[-1])


async def forget_comment(conn: Connection, comment_id: int) -> int:
    """Delete a deleted comment's notification in this database; how many."""
    result = await conn.execute("DELETE FROM notifications WHERE comment_id = $1", comment_id)
    return int(result.split()[-1])


async def add_tip(
    conn: Connection,
    *,
    transfer_id: int,
    user_id: int,
    actor_id: int,
    actor_username: str,
    photo_id: int | None,
    text: str,
) -> NotificationRecord | None:
    """A tip's notification, once per transfer (its job may run again): the
    record when written now, None when it was there already. Its id names
    the receiver's shard, where it lives."""
    row = await conn.fetchrow(
        "INSERT INTO notifications (id, user_id, kind, actor_id, actor_username, photo_id, "
        "text, transfer_id) VALUES (picshare_next_id($7), $1, 'tip', $2, $3, $4, $5, $6) "
        "ON CONFLICT (transfer_id) WHERE transfer_id IS NOT NULL DO NOTHING "
        f"RETURNING {_COLUMNS}",
        user_id,
        actor_id,
        actor_username,
        photo_id,
        text,
        transfer_id,
        shard_of(user_id),
    )
    return None if row is None else NotificationRecord.from_row(row)

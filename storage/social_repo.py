"""SQL for likes, comments, follows and follow requests.

Counts are denormalized onto the photo and user rows and kept exact by
changing them in the same transaction as the row they count, only when that
row was really inserted or deleted (`ON CONFLICT DO NOTHING` / `RETURNING`),
so repeated or concurrent likes never count twice.
"""

from __future__ import annotations

from typing import Protocol

from storage.db import Connection
from storage.ids import shard_of
from storage.records import CommentRecord, Relationship, UserListEntry

_MAX_ID = 9_223_372_036_854_775_807


class UserLister(Protocol):
    """followers() / following(): one page of a user's list."""

    async def __call__(
        self, conn: Connection, user_id: int, *, before: int | None, limit: int
    ) -> list[UserListEntry]: ...


async def like(conn: Connection, photo_id: int, user_id: int) -> tuple[bool, int]:
    """(whether this call added the like, the photo's like_count now)."""
    added = await conn.fetchval(
        "INSERT INTO likes (photo_id, user_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        photo_id,
        user_id,
    )
    if added:
        count = await conn.fetchval(
            "UPDATE photos SET like_count = like_count + 1 WHERE id = $1 RETURNING like_count",
            photo_id,
        )
    else:
        count = await conn.fetchval("SELECT like_count FROM photos WHERE id = $1", photo_id)
    return bool(added), int(count)


async def unlike(conn: Connection, photo_id: int, user_id: int) -> int:
    removed = await conn.fetchval(
        "DELETE FROM likes WHERE photo_id = $1 AND user_id = $2 RETURNING true",
        photo_id,
        user_id,
    )
    if removed:
        count = await conn.fetchval(
            "UPDATE photos SET like_count = like_count - 1 WHERE id = $1 RETURNING like_count",
            photo_id,
        )
    else:
        count = await conn.fetchval("SELECT like_count FROM photos WHERE id = $1", photo_id)
    return int(count)


_COMMENT = "id, photo_id, user_id, username, display_name, text, created_at"


async def add_comment(
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
    await conn.execute(
        "UPDATE photos SET comment_count = comment_count + 1 WHERE id = $1", photo_id
    )
    assert row is not None
    return CommentRecord.from_row(row)


async def comment_by_id(conn: Connection, comment_id: int) -> CommentRecord | None:
    row = await conn.fetchrow(f"SELECT {_COMMENT} FROM comments WHERE id = $1", comment_id)
    return None if row is None else CommentRecord.from_row(row)


async def delete_comment(conn: Connection, comment: CommentRecord) -> bool:
    deleted = await conn.fetchval("DELETE FROM comments WHERE id = $1 RETURNING true", comment.id)
    if deleted:
        await conn.execute(
            "UPDATE photos SET comment_count = comment_count - 1 WHERE id = $1", comment.photo_id
        )
    return bool(deleted)


async def list_comments(
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


async def rename_in_comments(conn: Connection, user_id: int, display_name: str) -> None:
    await conn.execute(
        "UPDATE comments SET display_name = $2 WHERE user_id = $1 AND display_name <> $2",
        user_id,
        display_name,
    )


async def relationship(conn: Connection, viewer_id: int, other_id: int) -> Relationship:
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2) AS f, "
        "EXISTS (SELECT 1 FROM follow_requests WHERE requester_id = $1 AND target_id = $2) AS r",
        viewer_id,
        other_id,
    )
    assert row is not None
    return Relationship(following=bool(row["f"]), requested=bool(row["r"]))


async def _lock_users(conn: Connection, *user_ids: int) -> None:
    # Always in id order: A follows B while B follows A cannot deadlock.
    await conn.execute(
        "SELECT 1 FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        sorted(user_ids),
    )


async def follow(conn: Connection, follower_id: int, followee_id: int) -> bool:
    """Add an approved follow; True if it is new. Keeps both users' counts."""
    await _lock_users(conn, follower_id, followee_id)
    added = await conn.fetchval(
        "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        follower_id,
        followee_id,
    )
    if added:
        await conn.execute(
            "UPDATE users SET following_count = following_count + 1 WHERE id = $1", follower_id
        )
        await conn.execute(
            "UPDATE users SET follower_count = follower_count + 1 WHERE id = $1", followee_id
        )
        await conn.execute(
            "DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2",
            follower_id,
            followee_id,
        )
    return bool(added)


async def unfollow(conn: Connection, follower_id: int, followee_id: int) -> bool:
    await _lock_users(conn, follower_id, followee_id)
    removed = await conn.fetchval(
        "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING true",
        follower_id,
        followee_id,
    )
    if removed:
        await conn.execute(
            "UPDATE users SET following_count = following_count - 1 WHERE id = $1", follower_id
        )
        await conn.execute(
            "UPDATE users SET follower_count = follower_count - 1 WHERE id = $1", followee_id
        )
    return bool(removed)


async def request_follow(conn: Connection, requester_id: int, target_id: int) -> bool:
    added = await conn.fetchval(
        "INSERT INTO follow_requests (requester_id, target_id) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        requester_id,
        target_id,
    )
    return bool(added)


async def cancel_request(conn: Connection, requester_id: int, target_id: int) -> bool:
    removed = await conn.fetchval(
        "DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2 RETURNING true",
        requester_id,
        target_id,
    )
    return bool(removed)


_ENTRY = "u.id AS user_id, u.username, u.display_name, u.private"


async def followers(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[UserListEntry]:
    rows = await conn.fetch(
        f"SELECT f.id, {_ENTRY} FROM follows f JOIN users u ON u.id = f.follower_id "
        "WHERE f.followee_id = $1 AND f.id < $2 ORDER BY f.id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [UserListEntry.from_row(r) for r in rows]


async def following(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[UserListEntry]:
    rows = await conn.fetch(
        f"SELECT f.id, {_ENTRY} FROM follows f JOIN users u ON u.id = f.followee_id "
        "WHERE f.follower_id = $1 AND f.id < $2 ORDER BY f.id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [UserListEntry.from_row(r) for r in rows]


async def incoming_requests(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[UserListEntry]:
    rows = await conn.fetch(
        f"SELECT r.id, {_ENTRY} FROM follow_requests r JOIN users u ON u.id = r.requester_id "
        "WHERE r.target_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [UserListEntry.from_row(r) for r in rows]


async def approve_all_requests(conn: Connection, target_id: int) -> list[int]:
    """When an account goes public, its pending requests become follows."""
    rows = await conn.fetch(
        "SELECT requester_id FROM follow_requests WHERE target_id = $1", target_id
    )
    approved = []
    for row in rows:
        if await follow(conn, int(row["requester_id"]), target_id):
            approved.append(int(row["requester_id"]))
    return approved


async def viewer_flags(
    conn: Connection, viewer_id: int, photo_id: int, owner_id: int
) -> tuple[bool, bool]:
    """(the viewer likes the photo, the viewer follows its owner), in one round trip."""
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM likes WHERE photo_id = $2 AND user_id = $1) AS liked, "
        "EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $3) AS follows",
        viewer_id,
        photo_id,
        owner_id,
    )
    assert row is not None
    return bool(row["liked"]), bool(row["follows"])

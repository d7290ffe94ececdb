"""SQL for likes, comments, follows and follow requests.

Counts are denormalized onto the photo and user rows and kept exact by
changing them in the same transaction as the row they count, only when that
row was really inserted or deleted (`ON CONFLICT DO NOTHING` / `RETURNING`),
so repeated or concurrent likes never count twice.

With shards, a follow has a row on the follower's shard and one on the
followee's (the same id; one row when they share a database), and each
database counts only the users it holds: an UPDATE of a user who lives
elsewhere changes no row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from storage import comments_repo, jobs_repo, likes_repo, photos_repo
from storage.db import Connection
from storage.ids import shard_of
from storage.records import CommentRecord, Relationship, UserListEntry

_MAX_ID = 9_223_372_036_854_775_807


# follow() or unfollow(): one side's change, True if a row really changed.
FollowChange = Callable[[Connection, int, int], Awaitable[bool]]


class IdLister(Protocol):
    """follower_ids() / following_ids() / request_ids(): one page of a list."""

    async def __call__(
        self, conn: Connection, user_id: int, *, before: int | None, limit: int
    ) -> list[ListedId]: ...


async def like(conn: Connection, photo_id: int, user_id: int) -> tuple[bool, int]:
    """(whether this call added the like, the photo's like_count now): where
    likes live beside their photo, one transaction does both."""
    added = await likes_repo.add(conn, photo_id, user_id)
    count = await photos_repo.count(conn, photo_id, photos_repo.LIKE_COUNT, 1 if added else 0)
    return added, int(count or 0)


async def unlike(conn: Connection, photo_id: int, user_id: int) -> int:
    removed = await likes_repo.remove(conn, photo_id, user_id)
    count = await photos_repo.count(conn, photo_id, photos_repo.LIKE_COUNT, -1 if removed else 0)
    return int(count or 0)


async def delete_comment(conn: Connection, comment: CommentRecord) -> bool:
    deleted = await comments_repo.remove(conn, comment.id)
    if deleted:
        await photos_repo.count(conn, comment.photo_id, photos_repo.COMMENT_COUNT, -1)
    return deleted


async def followed_among(conn: Connection, follower_id: int, user_ids: list[int]) -> set[int]:
    """Which of `user_ids` the follower follows (on the follower's own database,
    where the follower side of each of their follows is)."""
    rows = await conn.fetch(
        "SELECT followee_id FROM follows WHERE follower_id = $1 "
        "AND followee_id = ANY($2::bigint[])",
        follower_id,
        user_ids,
    )
    return {int(r["followee_id"]) for r in rows}


async def rename_in_comments(conn: Connection, user_id: int, display_name: str) -> None:
    await conn.execute(
        "UPDATE comments SET display_name = $2 WHERE user_id = $1 AND display_name <> $2",
        user_id,
        display_name,
    )


async def relationship(conn: Connection, viewer_id: int, other_id: int) -> Relationship:
    """Both answers from one database: right when the two users share it, and on
    the other's shard for privacy (its follows row is there, and its requests)."""
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2) AS f, "
        "EXISTS (SELECT 1 FROM follow_requests WHERE requester_id = $1 AND target_id = $2) AS r",
        viewer_id,
        other_id,
    )
    assert row is not None
    return Relationship(following=bool(row["f"]), requested=bool(row["r"]))


async def follows(conn: Connection, follower_id: int, followee_id: int) -> bool:
    """Whether this database has the follow's row (its side of it)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)",
        follower_id,
        followee_id,
    )
    return bool(found)


async def requested(conn: Connection, requester_id: int, target_id: int) -> bool:
    """Whether a request is pending (asked of the target's shard, where it lives)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM follow_requests WHERE requester_id = $1 AND target_id = $2)",
        requester_id,
        target_id,
    )
    return bool(found)


@dataclass(frozen=True, slots=True)
class FollowRow:
    """A follow as its origin has it: the mirror copies the id and the time."""

    id: int
    created_at: datetime


async def follow_row(conn: Connection, follower_id: int, followee_id: int) -> FollowRow | None:
    row = await conn.fetchrow(
        "SELECT id, created_at FROM follows WHERE follower_id = $1 AND followee_id = $2",
        follower_id,
        followee_id,
    )
    return None if row is None else FollowRow(int(row["id"]), row["created_at"])


async def _lock_users(conn: Connection, *user_ids: int) -> None:
    # Always in id order: A follows B while B follows A cannot deadlock. Only
    # the users whose rows are on this database exist here to be locked.
    await conn.execute(
        "SELECT 1 FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        sorted(user_ids),
    )


async def follow(
    conn: Connection, follower_id: int, followee_id: int, *, like: FollowRow | None = None
) -> bool:
    """Add an approved follow's row on this database; True if it is new.

    With shards a follow has a row on the follower's shard and one on the
    followee's (one row when they share a database). Each count lives on its
    user's row, so each database counts the users it holds: an UPDATE of a
    user who lives elsewhere changes nothing. The id comes from the follower's
    logical shard; a mirror passes `like`, the origin's row, to copy it."""
    await _lock_users(conn, follower_id, followee_id)
    added = await conn.fetchval(
        "INSERT INTO follows (id, follower_id, followee_id, created_at) "
        "VALUES (COALESCE($3, picshare_next_id($4)), $1, $2, COALESCE($5, now())) "
        "ON CONFLICT DO NOTHING RETURNING true",
        follower_id,
        followee_id,
        None if like is None else like.id,
        shard_of(follower_id),
        None if like is None else like.created_at,
    )
    if added:
        await conn.execute(
            "UPDATE users SET following_count = following_count + 1 WHERE id = $1", follower_id
        )
        await conn.execute(
            "UPDATE users SET follower_count = follower_count + 1 WHERE id = $1", followee_id
        )
        # Requests live on the target's shard: gone there once the follow is.
        await cancel_request(conn, follower_id, followee_id)
    return bool(added)


async def unfollow(conn: Connection, follower_id: int, followee_id: int) -> bool:
    """Remove this database's row of the follow; counts as in `follow`."""
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


async def lock_pair(conn: Connection, follower_id: int, followee_id: int) -> None:
    """Serialize the changes of one follow on this database (till commit):
    every write of either side takes it, and a mirror run takes it on both
    databases, so each run reads the origin after the change before it
    committed and the last to run leaves what the origin had last."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"follow:{follower_id}:{followee_id}",
    )


async def request_follow(conn: Connection, requester_id: int, target_id: int) -> bool:
    """A pending request, on the target's shard (its id from the target's logical shard)."""
    added = await conn.fetchval(
        "INSERT INTO follow_requests (id, requester_id, target_id) "
        "VALUES (picshare_next_id($3), $1, $2) ON CONFLICT DO NOTHING RETURNING true",
        requester_id,
        target_id,
        shard_of(target_id),
    )
    return bool(added)


async def cancel_request(conn: Connection, requester_id: int, target_id: int) -> bool:
    removed = await conn.fetchval(
        "DELETE FROM follow_requests WHERE requester_id = $1 AND target_id = $2 RETURNING true",
        requester_id,
        target_id,
    )
    return bool(removed)


@dataclass(frozen=True, slots=True)
class ListedId:
    """One entry of a list of users before its user is looked up: the list's
    own key (a follow or request id) and the user it names."""

    id: int
    user_id: int


async def follower_ids(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[ListedId]:
    """A page of who follows `user_id` (on their shard: the followee side)."""
    rows = await conn.fetch(
        "SELECT id, follower_id AS user_id FROM follows "
        "WHERE followee_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [ListedId(int(r["id"]), int(r["user_id"])) for r in rows]


async def following_ids(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[ListedId]:
    """A page of whom `user_id` follows (on their shard: the follower side)."""
    rows = await conn.fetch(
        "SELECT id, followee_id AS user_id FROM follows "
        "WHERE follower_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [ListedId(int(r["id"]), int(r["user_id"])) for r in rows]


async def request_ids(
    conn: Connection, user_id: int, *, before: int | None, limit: int
) -> list[ListedId]:
    """A page of who asked to follow `user_id` (requests live on the target's shard)."""
    rows = await conn.fetch(
        "SELECT id, requester_id AS user_id FROM follow_requests "
        "WHERE target_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        user_id,
        before or _MAX_ID,
        limit,
    )
    return [ListedId(int(r["id"]), int(r["user_id"])) for r in rows]


async def followee_ids(conn: Connection, user_id: int) -> list[int]:
    """Everyone `user_id` follows (the home feed's owners), from the follower's shard."""
    rows = await conn.fetch("SELECT followee_id FROM follows WHERE follower_id = $1", user_id)
    return [int(r["followee_id"]) for r in rows]


async def user_entries(conn: Connection, user_ids: list[int]) -> dict[int, UserListEntry]:
    """The users among `user_ids` that live on this database, by id (their
    `id` field is the user's; the caller puts the list's own key in)."""
    rows = await conn.fetch(
        "SELECT id, id AS user_id, username, display_name, private FROM users "
        "WHERE id = ANY($1::bigint[])",
        user_ids,
    )
    return {int(r["id"]): UserListEntry.from_row(r) for r in rows}


async def approve_all_requests(conn: Connection, target_id: int) -> list[int]:
    """When an account goes public, its pending requests become follows.
    A requester who lives in this database too (their user row is here) gets
    the follow's one row now; for one of another database a job (this
    database's jobs table, in this transaction) approves the request through
    both databases (picshare/follow_pairs.py), unless it is withdrawn first.
    Returns the requesters approved now."""
    rows = await conn.fetch(
        "SELECT r.requester_id, EXISTS (SELECT 1 FROM users u WHERE u.id = r.requester_id) "
        "AS here FROM follow_requests r WHERE r.target_id = $1 ORDER BY r.requester_id",
        target_id,
    )
    approved = []
    for row in rows:
        requester = int(row["requester_id"])
        if not row["here"]:
            await jobs_repo.enqueue(
                conn,
                FOLLOW_APPROVE_JOB,
                mirror_payload(requester, target_id),
                max_attempts=MIRROR_ATTEMPTS,
            )
            continue
        await cancel_request(conn, requester, target_id)
        if await follow(conn, requester, target_id):
            approved.append(requester)
    return approved


# The job that makes the other side of a follow match the truth's, and the
# one that approves a request across databases (picshare/social.py).
FOLLOW_MIRROR_JOB = "follow.mirror"
FOLLOW_APPROVE_JOB = "follow.approve"
# A shard may be down for a long while: the mirror keeps trying, with the
# job backoff capped (jobs.backoff_max, 5 min): about three days of outage.
MIRROR_ATTEMPTS = 1000


def mirror_payload(follower_id: int, followee_id: int) -> dict[str, Any]:
    return {"follower_id": follower_id, "followee_id": followee_id}


def liked_sql(viewer: str, photo: str) -> str:
    """The SQL of "the viewer likes the photo" (`viewer`, `photo`: SQL
    expressions of their ids; NULL viewer: false), for statements that read
    it beside other rows."""
    return f"EXISTS (SELECT 1 FROM likes WHERE photo_id = {photo} AND user_id = {viewer})"


def follows_sql(viewer: str, owner: str) -> str:
    """The SQL of "the viewer follows the owner" (the owner's side of the
    follow: it is on the owner's shard), as `liked_sql`."""
    return f"EXISTS (SELECT 1 FROM follows WHERE follower_id = {viewer} AND followee_id = {owner})"


async def viewer_flags(
    conn: Connection, viewer_id: int, photo_id: int, owner_id: int
) -> tuple[bool, bool]:
    """(the viewer likes the photo, the viewer follows its owner), in one round trip."""
    row = await conn.fetchrow(
        f"SELECT {liked_sql('$1', '$2')} AS liked, {follows_sql('$1', '$3')} AS follows",
        viewer_id,
        photo_id,
        owner_id,
    )
    assert row is not None
    return bool(row["liked"]), bool(row["follows"])

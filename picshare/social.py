"""Likes, comments, follows, follow requests and profiles.

Every write checks that the actor may see what they act on (a photo of a
private account is 404 to a stranger, as if it did not exist), and writes the
notification it causes in the same transaction (picshare/notify.py): the
transaction of the shard where the notification's recipient lives. A follow
across shards writes the follower's side first and the followee's side, with
its notification, in a second transaction on the followee's shard, made sure
of by a durable job (`_mirror`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from picshare import privacy
from picshare.caching import CachedReads
from picshare.comments import Comments
from picshare.errors import NotFound, invalid
from picshare.follow_pairs import FollowPair, Side
from picshare.jobs import JobKind, JobRunner
from picshare.likes import Likes, LikeState
from picshare.notify import Notifier
from picshare.outbox import Outbox
from picshare.pagination import Page, decode_cursor, page_of
from storage import social_repo, users_repo
from storage.db import Connection
from storage.records import CommentRecord, Relationship, UserListEntry, UserRecord
from storage.router import PRIMARY, Databases, read_your_writes
from storage.shards import Shards

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Profile:
    user: UserRecord
    relationship: Relationship | None  # None for the anonymous viewer or oneself
    can_see: bool  # photos and lists visible to this viewer


class SocialService:
    __slots__ = ("_cached", "_comments", "_db", "_events", "_jobs", "_likes", "_notifier")

    def __init__(
        self,
        *,
        db: Shards,
        notifier: Notifier,
        likes: Likes,
        comments: Comments,
        cached: CachedReads,
        jobs: JobRunner,
        events: Outbox,
    ) -> None:
        self._db = db
        self._likes = likes
        self._comments = comments
        self._events = events
        self._notifier = notifier
        self._cached = cached
        self._jobs = jobs

    def job_kinds(self) -> dict[str, JobKind]:
        return {
            social_repo.FOLLOW_MIRROR_JOB: JobKind(self._mirror_job),
            social_repo.FOLLOW_APPROVE_JOB: JobKind(self._approve_job),
        }

    # -- likes ----------------------------------------------------------------
    # Where likes live, and so how a like is written: picshare/likes.py.

    async def like(self, photo_id: int, user: UserRecord) -> LikeState:
        return await self._likes.like(photo_id, user)

    async def unlike(self, photo_id: int, user: UserRecord) -> LikeState:
        return await self._likes.unlike(photo_id, user)

    # -- comments -------------------------------------------------------------
    # Where comments live, and so how one is written: picshare/comments.py.

    async def comments(
        self, photo_id: int, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[CommentRecord]:
        return await self._comments.page(photo_id, viewer_id, cursor=cursor, limit=limit)

    async def latest_comments(
        self, photo_ids: list[int], viewer_id: int | None, *, limit: int
    ) -> dict[int, list[CommentRecord]]:
        return await self._comments.latest(photo_ids, viewer_id, limit=limit)

    async def add_comment(self, photo_id: int, user: UserRecord, text: object) -> CommentRecord:
        return await self._comments.add(photo_id, user, text)

    async def delete_comment(self, comment_id: int, user_id: int) -> None:
        await self._comments.delete(comment_id, user_id)

    async def followed_among(self, viewer_id: int, user_ids: list[int]) -> set[int]:
        """Which of `user_ids` the viewer follows: one statement on the viewer's shard."""
        async with self._db.of_user(viewer_id).read(read_your_writes(viewer_id)) as conn:
            return await social_repo.followed_among(conn, viewer_id, user_ids)

    # -- profiles and follows ---------------------------------------------------
    #
    # A follow has a row on the follower's shard (their "following" list, the
    # home feed) and one on the followee's (their "followers" list, the
    # privacy rule on their photos), with the same id; one row when the two
    # share a database. The side that changes first is the truth: the
    # follower's for a follow or an unfollow, the followee's for an approved
    # request. Its transaction enqueues a mirror job that makes the other side
    # match it (`_mirror_job`); a follow within one database is one
    # transaction, as before shards.

    async def profile(self, username: str, viewer_id: int | None) -> Profile:
        """The profile from the cache; how the viewer stands from the database."""
        user = await self._cached.user_by_name(username)
        if user is None:
            raise NotFound("no such user")
        relation = None
        if viewer_id is not None and viewer_id != user.id:
            relation = await self._relationship(viewer_id, user.id)
        follows = relation is not None and relation.following
        can_see = privacy.can_see_account(user.id, user.private, viewer_id, follows=follows)
        return Profile(user, relation, can_see)

    async def _relationship(self, viewer_id: int, other_id: int) -> Relationship:
        """Requested from the other's shard (where requests live); following
        if either side of the follow says so (they differ only while a change
        of the pair is under way, or after a crash until its mirror job ran:
        follow_pairs.py)."""
        mine, theirs = self._db.of_user(viewer_id), self._db.of_user(other_id)
        consistency = read_your_writes(viewer_id)
        if mine is theirs:
            async with mine.read(consistency) as conn:
                return await social_repo.relationship(conn, viewer_id, other_id)

        async def following() -> bool:
            async with mine.read(consistency) as conn:
                return await social_repo.follows(conn, viewer_id, other_id)

        async def their_side() -> Relationship:
            async with theirs.read(consistency) as conn:
                return await social_repo.relationship(conn, viewer_id, other_id)

        here, there = await asyncio.gather(following(), their_side())
        return Relationship(following=here or there.following, requested=there.requested)

    async def follow(self, username: str, user: UserRecord) -> Profile:
        theirs, mine = self._db.of_username(username), self._db.of_user(user.id)
        async with self._notifier.transaction(theirs) as (conn, notes):
            target = await _user(conn, username)
            if target.id == user.id:
                raise invalid("username", "you cannot follow yourself")
            if target.private:
                # A request lives on the target's shard, as does its follow row.
                following = await social_repo.follows(conn, user.id, target.id)
                if not following and await social_repo.request_follow(conn, user.id, target.id):
                    await notes.follow_requested(target, user)
            elif mine is theirs and await social_repo.follow(conn, user.id, target.id):
                await notes.followed(target, user)
                await self._events.user_followed(conn, user.id, target.id)
        self._events.committed()
        if not target.private and mine is not theirs:
            await self._grant(user, target)
        await self._follows_changed(user.id, target.id)
        return await self.profile(username, user.id)

    async def unfollow(self, username: str, user: UserRecord) -> Profile:
        target = await self._user_named(username)
        if self._db.of_user(user.id) is self._db.of_username(username):
            async with self._notifier.transaction(self._db.of_user(user.id)) as (conn, notes):
                await social_repo.unfollow(conn, user.id, target.id)
                if await social_repo.cancel_request(conn, user.id, target.id):
                    await notes.follow_request_withdrawn(target, user)
        else:
            async with FollowPair(self._db, self._notifier, user.id, target.id) as pair:

                async def undo(side: Side) -> bool:
                    dropped = await social_repo.unfollow(side.conn, user.id, target.id)
                    if side.followee and await social_repo.cancel_request(
                        side.conn, user.id, target.id
                    ):
                        await side.notes.follow_request_withdrawn(target, user)
                    return dropped

                if await undo(pair.first):
                    await self._enqueue_mirror(pair.first.conn, user.id, target.id)
                await pair.commit_first()
                await undo(pair.second)
        await self._follows_changed(user.id, target.id)
        return await self.profile(username, user.id)

    async def _grant(
        self, follower: UserRecord, followee: UserRecord, *, approving: bool = False
    ) -> None:
        """The follow on both databases (follow_pairs.py): the truth's side
        first with its mirror job, then the other. Approving a request also
        takes the request away and turns its notification into "follows you"
        (on the followee's side); a public account's follow tells them too."""
        async with FollowPair(self._db, self._notifier, follower.id, followee.id) as pair:
            if approving and not await social_repo.requested(
                pair.followee.conn, follower.id, followee.id
            ):
                raise NotFound("no follow request from that user")

            async def grant(side: Side, like: social_repo.FollowRow | None) -> bool:
                # A new follow row also takes the request away (social_repo.follow).
                made = await social_repo.follow(side.conn, follower.id, followee.id, like=like)
                if side.followee:
                    if approving:
                        await side.notes.follow_request_approved(followee, follower)
                    elif made:
                        await side.notes.followed(followee, follower)
                return made

            made = await grant(pair.first, None)
            truth = await social_repo.follow_row(pair.first.conn, follower.id, followee.id)
            if made:
                await self._enqueue_mirror(pair.first.conn, follower.id, followee.id)
                await self._events.user_followed(pair.first.conn, follower.id, followee.id)
            await pair.commit_first()
            await grant(pair.second, truth)
        self._events.committed()

    async def record_change(
        self, follower_id: int, followee_id: int, change: social_repo.FollowChange
    ) -> bool:
        """Only the first half of a change across databases: the truth's side
        (follow_pairs.py) with its mirror job, committed; what a crash between
        the halves leaves, for tests to make. True if a row really changed."""
        async with FollowPair(self._db, self._notifier, follower_id, followee_id) as pair:
            changed = await change(pair.first.conn, follower_id, followee_id)
            if changed:
                await self._enqueue_mirror(pair.first.conn, follower_id, followee_id)
            await pair.commit_first()
        return changed

    async def _enqueue_mirror(self, conn: Connection, follower_id: int, followee_id: int) -> None:
        await self._jobs.enqueue(
            conn,
            social_repo.FOLLOW_MIRROR_JOB,
            social_repo.mirror_payload(follower_id, followee_id),
            max_attempts=social_repo.MIRROR_ATTEMPTS,
        )

    async def followers(
        self, username: str, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[UserListEntry]:
        return await self._user_list(username, viewer_id, cursor, limit, social_repo.follower_ids)

    async def following(
        self, username: str, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[UserListEntry]:
        return await self._user_list(username, viewer_id, cursor, limit, social_repo.following_ids)

    async def _user_list(
        self,
        username: str,
        viewer_id: int | None,
        cursor: str | None,
        limit: int,
        fetch: social_repo.IdLister,
    ) -> Page[UserListEntry]:
        before = decode_cursor(cursor)
        # The account from the cache (filled from the primary, invalidated by
        # its owner's change): privacy is decided on fresh data.
        user = await self._cached.user_by_name(username)
        if user is None:
            raise NotFound("no such user")
        # Both sides of the list's follows are on the listed user's shard.
        async with self._db.of_user(user.id).read(read_your_writes(viewer_id)) as conn:
            if not await privacy.may_see_account(conn, user, viewer_id):
                raise NotFound("no such user, or the account is private")
            rows = await fetch(conn, user.id, before=before, limit=limit + 1)
        return await self._with_users(page_of(rows, limit), viewer_id)

    async def requests(
        self, user_id: int, *, cursor: str | None, limit: int
    ) -> Page[UserListEntry]:
        before = decode_cursor(cursor)
        async with self._db.of_user(user_id).read(read_your_writes(user_id)) as conn:
            rows = await social_repo.request_ids(conn, user_id, before=before, limit=limit + 1)
        return await self._with_users(page_of(rows, limit), user_id)

    async def _with_users(
        self, page: Page[social_repo.ListedId], viewer_id: int | None
    ) -> Page[UserListEntry]:
        """The users a page names, one query per shard holding some of them,
        in the page's order. The cursor is the list's own, so a shard left out
        (the page is then partial) skips no entry of the next page."""
        groups = dict(self._db.by_database(row.user_id for row in page.items))
        if not groups:
            return Page([], page.next_cursor)

        async def entries(db: Databases) -> dict[int, UserListEntry]:
            async with db.read(read_your_writes(viewer_id)) as conn:
                return await social_repo.user_entries(conn, groups[db])

        gathered = await self._db.gather(entries, among=list(groups))
        found = {k: v for part in gathered.results for k, v in part.items()}
        items = [
            replace(found[row.user_id], id=row.id) for row in page.items if row.user_id in found
        ]
        return Page(items, page.next_cursor, partial=gathered.partial)

    async def approve(self, user: UserRecord, requester: str) -> None:
        other = await self._user_named(requester)
        mine = self._db.of_user(user.id)
        if self._db.of_user(other.id) is not mine:
            await self._grant(other, user, approving=True)
        else:
            async with self._notifier.transaction(mine) as (conn, notes):
                if not await social_repo.cancel_request(conn, other.id, user.id):
                    raise NotFound("no follow request from that user")
                await social_repo.follow(conn, other.id, user.id)
                await notes.follow_request_approved(user, other)
                await self._events.user_followed(conn, other.id, user.id)
            self._events.committed()
        await self._follows_changed(other.id, user.id)

    async def _follows_changed(self, follower_id: int, followee_id: int) -> None:
        # Both counts changed, and the follower's feed has other people in it now.
        await self._cached.users_changed(follower_id, followee_id)
        await self._cached.feed_changed(follower_id)

    async def decline(self, user: UserRecord, requester: str) -> None:
        other = await self._user_named(requester)
        async with self._notifier.transaction(self._db.of_user(user.id)) as (conn, notes):
            if not await social_repo.cancel_request(conn, other.id, user.id):
                raise NotFound("no follow request from that user")
            await notes.follow_request_declined(user, other)

    async def _user_named(self, username: str) -> UserRecord:
        """A user by name, from the primary of their shard."""
        async with self._db.of_username(username).read(PRIMARY) as conn:
            return await _user(conn, username)

    # -- the jobs ----------------------------------------------------------------

    async def _mirror_job(self, payload: dict[str, Any]) -> None:
        # Jobs queued before follow_pairs.py also name an origin: the copy
        # always goes from the truth's side now (follow_pairs.py).
        await self._mirror(int(payload["follower_id"]), int(payload["followee_id"]))

    async def _mirror(self, follower_id: int, followee_id: int) -> None:
        """Make the other side of a follow match the truth's (follow_pairs.py):
        its row means a follow, none means none. Idempotent (ON CONFLICT DO
        NOTHING, DELETE RETURNING; counts move only with a row), and under the
        pair's locks, so it never runs inside a change of the pair."""
        if self._db.of_user(follower_id) is self._db.of_user(followee_id):
            return  # one row for both sides: nothing to copy
        async with FollowPair(self._db, self._notifier, follower_id, followee_id) as pair:
            truth = await social_repo.follow_row(pair.first.conn, follower_id, followee_id)
            other = pair.second
            if truth is None:
                changed = await social_repo.unfollow(other.conn, follower_id, followee_id)
            else:
                asked = other.followee and await social_repo.requested(
                    other.conn, follower_id, followee_id
                )
                changed = await social_repo.follow(other.conn, follower_id, followee_id, like=truth)
                if changed and other.followee:
                    # The change did not get to write its notification there.
                    follower = await users_repo.user_by_id(pair.first.conn, follower_id)
                    followee = await users_repo.user_by_id(other.conn, followee_id)
                    if follower is not None and followee is not None:
                        tell = (
                            other.notes.follow_request_approved if asked else other.notes.followed
                        )
                        await tell(followee, follower)
        if changed:
            await self._follows_changed(follower_id, followee_id)

    async def _approve_job(self, payload: dict[str, Any]) -> None:
        """A request to an account that went public, from a user of another
        database (social_repo.approve_all_requests): approved now, unless it
        was withdrawn meanwhile."""
        follower_id, followee_id = int(payload["follower_id"]), int(payload["followee_id"])
        async with self._db.of_user(follower_id).read(PRIMARY) as conn:
            follower = await users_repo.user_by_id(conn, follower_id)
        async with self._db.of_user(followee_id).read(PRIMARY) as conn:
            followee = await users_repo.user_by_id(conn, followee_id)
        if follower is None or followee is None:
            return
        home = self._db.of_user(followee_id)
        if self._db.of_user(follower_id) is home:
            # One database by now (a shard moved meanwhile): the one row.
            async with home.transaction() as conn:
                if not await social_repo.requested(conn, follower_id, followee_id):
                    return
                await social_repo.follow(conn, follower_id, followee_id)
        else:
            try:
                await self._grant(follower, followee, approving=True)
            except NotFound:
                return  # withdrawn, or approved already
        await self._follows_changed(follower_id, followee_id)


async def _user(conn: Connection, username: str) -> UserRecord:
    user = await users_repo.user_by_username(conn, username)
    if user is None:
        raise NotFound("no such user")
    return user

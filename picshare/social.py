"""Likes, comments, follows, follow requests and profiles.

Every write checks that the actor may see what they act on (a photo of a
private account is 404 to a stranger, as if it did not exist), and writes the
notification it causes in the same transaction (picshare/notify.py).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from picshare import notify, privacy
from picshare.caching import CachedReads
from picshare.errors import Forbidden, InvalidInput, NotFound, invalid
from picshare.events import EventBus
from picshare.pagination import Page, decode_cursor, page_of
from storage import photos_repo, social_repo, users_repo
from storage.db import Connection
from storage.records import CommentRecord, Relationship, UserListEntry, UserRecord
from storage.router import read_your_writes
from storage.shards import Shards

MAX_COMMENT = 2200


@dataclass(frozen=True, slots=True)
class LikeState:
    like_count: int
    liked: bool


@dataclass(frozen=True, slots=True)
class Profile:
    user: UserRecord
    relationship: Relationship | None  # None for the anonymous viewer or oneself
    can_see: bool  # photos and lists visible to this viewer


class SocialService:
    __slots__ = ("_bus", "_cached", "_db")

    def __init__(self, *, db: Shards, bus: EventBus, cached: CachedReads) -> None:
        self._db = db
        self._bus = bus
        self._cached = cached

    # -- likes ----------------------------------------------------------------
    # A like or comment lives with its photo, on the photo's shard (where the
    # photo's owner, and so the notification to them, live too): one
    # transaction there, whichever shard the actor's own rows are on.

    async def like(self, photo_id: int, user: UserRecord) -> LikeState:
        async with notify.transaction(self._db.of_id(photo_id), self._bus) as (conn, notes):
            photo = await photos_repo.photo_for(conn, photo_id, user.id)
            if photo is None or not privacy.can_react(photo):
                raise NotFound("no such photo")
            added, count = await social_repo.like(conn, photo_id, user.id)
            if added:
                await notes.liked(photo, user)
        await self._cached.photo_changed(photo_id)
        await self._cached.feed_changed(user.id)  # liked_by_me in the liker's feed
        return LikeState(count, True)

    async def unlike(self, photo_id: int, user: UserRecord) -> LikeState:
        async with self._db.of_id(photo_id).transaction() as conn:
            if await photos_repo.photo_for(conn, photo_id, user.id) is None:
                raise NotFound("no such photo")
            count = await social_repo.unlike(conn, photo_id, user.id)
        await self._cached.photo_changed(photo_id)
        await self._cached.feed_changed(user.id)
        return LikeState(count, False)

    # -- comments -------------------------------------------------------------

    async def comments(
        self, photo_id: int, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[CommentRecord]:
        before = decode_cursor(cursor)
        async with self._db.of_id(photo_id).read(read_your_writes(viewer_id)) as conn:
            if await photos_repo.photo_for(conn, photo_id, viewer_id) is None:
                raise NotFound("no such photo")
            rows = await social_repo.list_comments(
                conn, photo_id=photo_id, before=before, limit=limit + 1
            )
        return page_of(rows, limit)

    async def add_comment(self, photo_id: int, user: UserRecord, text: object) -> CommentRecord:
        clean = _comment_text(text)
        async with notify.transaction(self._db.of_id(photo_id), self._bus) as (conn, notes):
            photo = await photos_repo.photo_for(conn, photo_id, user.id)
            if photo is None or not privacy.can_react(photo):
                raise NotFound("no such photo")
            comment = await social_repo.add_comment(
                conn,
                photo_id=photo_id,
                user_id=user.id,
                username=user.username,
                display_name=user.display_name,
                text=clean,
            )
            await notes.commented(photo, user, comment)
        await self._cached.photo_changed(photo_id)
        return comment

    async def delete_comment(self, comment_id: int, user_id: int) -> None:
        # A comment's id carries its photo's logical shard: the one database.
        async with self._db.of_id(comment_id).transaction() as conn:
            comment = await social_repo.comment_by_id(conn, comment_id)
            photo = (
                None
                if comment is None
                else await photos_repo.photo_for(conn, comment.photo_id, user_id)
            )
            if comment is None or photo is None:
                raise NotFound("no such comment")
            if not privacy.can_delete_comment(comment.user_id, photo, user_id):
                raise Forbidden("only the comment's author or the photo's owner can delete it")
            await social_repo.delete_comment(conn, comment)
        await self._cached.photo_changed(comment.photo_id)

    # -- profiles and follows ---------------------------------------------------

    async def profile(self, username: str, viewer_id: int | None) -> Profile:
        """The profile from the cache; how the viewer stands from the database."""
        user = await self._cached.user_by_name(username)
        if user is None:
            raise NotFound("no such user")
        relation = None
        if viewer_id is not None and viewer_id != user.id:
            async with self._db.unrouted.read(read_your_writes(viewer_id)) as conn:
                relation = await social_repo.relationship(conn, viewer_id, user.id)
        follows = relation is not None and relation.following
        can_see = privacy.can_see_account(user.id, user.private, viewer_id, follows=follows)
        return Profile(user, relation, can_see)

    async def follow(self, username: str, user: UserRecord) -> Profile:
        async with notify.transaction(self._db.unrouted, self._bus) as (conn, notes):
            target = await _user(conn, username)
            if target.id == user.id:
                raise invalid("username", "you cannot follow yourself")
            if target.private:
                following = (await social_repo.relationship(conn, user.id, target.id)).following
                if not following and await social_repo.request_follow(conn, user.id, target.id):
                    await notes.follow_requested(target, user)
            elif await social_repo.follow(conn, user.id, target.id):
                await notes.followed(target, user)
        await self._follows_changed(user.id, target.id)
        return await self.profile(username, user.id)

    async def unfollow(self, username: str, user: UserRecord) -> Profile:
        async with notify.transaction(self._db.unrouted, self._bus) as (conn, notes):
            target = await _user(conn, username)
            await social_repo.unfollow(conn, user.id, target.id)
            if await social_repo.cancel_request(conn, user.id, target.id):
                await notes.follow_request_withdrawn(target, user)
        await self._follows_changed(user.id, target.id)
        return await self.profile(username, user.id)

    async def followers(
        self, username: str, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[UserListEntry]:
        return await self._user_list(username, viewer_id, cursor, limit, social_repo.followers)

    async def following(
        self, username: str, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[UserListEntry]:
        return await self._user_list(username, viewer_id, cursor, limit, social_repo.following)

    async def _user_list(
        self,
        username: str,
        viewer_id: int | None,
        cursor: str | None,
        limit: int,
        fetch: social_repo.UserLister,
    ) -> Page[UserListEntry]:
        before = decode_cursor(cursor)
        # The account from the cache (filled from the primary, invalidated by
        # its owner's change): privacy is decided on fresh data.
        user = await self._cached.user_by_name(username)
        if user is None:
            raise NotFound("no such user")
        async with self._db.unrouted.read(read_your_writes(viewer_id)) as conn:
            if not await privacy.may_see_account(conn, user, viewer_id):
                raise NotFound("no such user, or the account is private")
            rows = await fetch(conn, user.id, before=before, limit=limit + 1)
        return page_of(rows, limit)

    async def requests(
        self, user_id: int, *, cursor: str | None, limit: int
    ) -> Page[UserListEntry]:
        before = decode_cursor(cursor)
        async with self._db.unrouted.read(read_your_writes(user_id)) as conn:
            rows = await social_repo.incoming_requests(
                conn, user_id, before=before, limit=limit + 1
            )
        return page_of(rows, limit)

    async def approve(self, user: UserRecord, requester: str) -> None:
        async with notify.transaction(self._db.unrouted, self._bus) as (conn, notes):
            other = await _user(conn, requester)
            if not await social_repo.cancel_request(conn, other.id, user.id):
                raise NotFound("no follow request from that user")
            await social_repo.follow(conn, other.id, user.id)
            await notes.follow_request_approved(user, other)
        await self._follows_changed(other.id, user.id)

    async def _follows_changed(self, follower_id: int, followee_id: int) -> None:
        # Both counts changed, and the follower's feed has other people in it now.
        await self._cached.users_changed(follower_id, followee_id)
        await self._cached.feed_changed(follower_id)

    async def decline(self, user: UserRecord, requester: str) -> None:
        async with notify.transaction(self._db.unrouted, self._bus) as (conn, notes):
            other = await _user(conn, requester)
            if not await social_repo.cancel_request(conn, other.id, user.id):
                raise NotFound("no follow request from that user")
            await notes.follow_request_declined(user, other)


async def _user(conn: Connection, username: str) -> UserRecord:
    user = await users_repo.user_by_username(conn, username)
    if user is None:
        raise NotFound("no such user")
    return user


def _comment_text(text: object) -> str:
    if not isinstance(text, str):
        raise invalid("text", "is required")
    clean = unicodedata.normalize("NFC", text.replace("\r\n", "\n").strip())
    if not 1 <= len(clean) <= MAX_COMMENT:
        raise InvalidInput([*invalid("text", f"must be 1 to {MAX_COMMENT} characters").errors])
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in clean):
        raise invalid("text", "must not contain control characters")
    return clean

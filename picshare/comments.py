"""Comments: where they live, reading, adding and deleting them.

Where comments live is the COMMENTS table group's question
(storage/table_groups.py), answered once in `Shards.comments` /
`comments_of`; this module acts on the answer:

- with the rest (the default): a comment lives with its photo, on the
  photo's shard, and one transaction there adds it, moves the photo's
  comment_count, writes the owner's notification and `comment.created`;
- in a database of their own (`PICSHARE_DATABASE_GROUP_COMMENTS_URL`): the
  comment's transaction there adds (or deletes) the row and enqueues a
  `comments.count` job; the job moves the photo's comment_count on the
  photo's shard and writes (or forgets) the notification and the event in
  that transaction, once (picshare/photo_counts.py). The comment is listed
  at once; the count and the notification lag by the job's pickup. A
  deleted photo's comments go by a job (`forget`).

A comment's id carries its photo's logical shard in either placement, so an
id alone leads to it (`comments_of`).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from picshare import photo_access, photo_counts, privacy
from picshare.caching import CachedReads
from picshare.errors import Forbidden, InvalidInput, NotFound, invalid
from picshare.jobs import JobKind, JobRunner
from picshare.notify import Notes, Notifier
from picshare.outbox import Outbox
from picshare.pagination import Page, decode_cursor, page_of
from storage import comments_repo, photos_repo, social_repo, users_repo
from storage.db import Connection
from storage.records import CommentRecord, PhotoRecord, UserRecord
from storage.router import PRIMARY, read_your_writes
from storage.shards import Shards

MAX_COMMENT = 2200
COUNT_JOB = "comments.count"
FORGET_JOB = "comments.forget_photo"


class Comments:
    __slots__ = ("_cached", "_db", "_events", "_jobs", "_notifier")

    def __init__(
        self,
        *,
        db: Shards,
        notifier: Notifier,
        cached: CachedReads,
        jobs: JobRunner,
        events: Outbox,
    ) -> None:
        self._db = db
        self._notifier = notifier
        self._cached = cached
        self._jobs = jobs
        self._events = events

    def __repr__(self) -> str:
        return f"<Comments apart={self._db.comments is not None}>"

    def job_kinds(self) -> dict[str, JobKind]:
        return {COUNT_JOB: JobKind(self._count_job), FORGET_JOB: JobKind(self._forget_job)}

    # -- reading ----------------------------------------------------------------

    async def page(
        self, photo_id: int, viewer_id: int | None, *, cursor: str | None, limit: int
    ) -> Page[CommentRecord]:
        before = decode_cursor(cursor)
        consistency = read_your_writes(viewer_id)
        if self._db.comments is None:
            async with self._db.photos_of(photo_id).read(consistency) as conn:
                if await photos_repo.photo_for(conn, photo_id, viewer_id) is None:
                    raise NotFound("no such photo")
                rows = await comments_repo.page(
                    conn, photo_id=photo_id, before=before, limit=limit + 1
                )
            return page_of(rows, limit)
        if await photo_access.visible_photo(self._db, photo_id, viewer_id, consistency) is None:
            raise NotFound("no such photo")
        async with self._db.comments_of(photo_id).read(consistency) as conn:
            rows = await comments_repo.page(conn, photo_id=photo_id, before=before, limit=limit + 1)
        return page_of(rows, limit)

    async def latest(
        self, photo_ids: list[int], viewer_id: int | None, *, limit: int
    ) -> dict[int, list[CommentRecord]]:
        """The newest `limit` (+1, to tell whether there are more) comments of
        each photo, newest first: one statement per database holding some.
        The caller has the photos from a read that applied the visibility
        rule already."""
        found: dict[int, list[CommentRecord]] = {photo_id: [] for photo_id in photo_ids}
        for db, ids in self._db.by_comments(photo_ids):
            async with db.read(read_your_writes(viewer_id)) as conn:
                for comment in await comments_repo.latest(conn, ids, limit + 1):
                    found[comment.photo_id].append(comment)
        return found

    # -- writing ----------------------------------------------------------------

    async def add(self, photo_id: int, user: UserRecord, text: object) -> CommentRecord:
        clean = _comment_text(text)
        if self._db.comments is None:
            async with self._notifier.transaction(self._db.photos_of(photo_id)) as (conn, notes):
                photo = await photos_repo.photo_for(conn, photo_id, user.id)
                if photo is None or not privacy.can_react(photo):
                    raise NotFound("no such photo")
                comment = await _insert(conn, photo_id, user, clean)
                # Beside its photo: counted in the same transaction.
                await photos_repo.count(conn, photo_id, photos_repo.COMMENT_COUNT, 1)
                await notes.commented(photo, user, comment)
                await self._events.comment_created(conn, photo, user, comment)
            self._events.committed()
            await self._cached.photo_changed(photo_id)
            return comment
        # From the primary: the privacy rule is decided on fresh data.
        photo = await photo_access.visible_photo(self._db, photo_id, user.id, PRIMARY)
        if photo is None or not privacy.can_react(photo):
            raise NotFound("no such photo")
        async with self._db.comments_of(photo_id).transaction() as conn:
            comment = await _insert(conn, photo_id, user, clean)
            data = photo_counts.payload(photo_id, 1, comment_id=comment.id, user_id=user.id)
            await self._jobs.enqueue(conn, COUNT_JOB, data)
        self._jobs.wake()
        return comment

    async def delete(self, comment_id: int, user_id: int) -> None:
        if self._db.comments is None:
            # A comment's id carries its photo's logical shard: the one database.
            async with self._notifier.transaction(self._db.photos_of(comment_id)) as (conn, notes):
                comment = await comments_repo.by_id(conn, comment_id)
                photo = (
                    None
                    if comment is None
                    else await photos_repo.photo_for(conn, comment.photo_id, user_id)
                )
                _may_delete(comment, photo, user_id)
                assert comment is not None
                await social_repo.delete_comment(conn, comment)
                await notes.comment_deleted(comment.id)
            await self._cached.photo_changed(comment.photo_id)
            return
        async with self._db.comments_of(comment_id).read(PRIMARY) as conn:
            comment = await comments_repo.by_id(conn, comment_id)
        photo = None
        if comment is not None:
            photo = await photo_access.visible_photo(self._db, comment.photo_id, user_id, PRIMARY)
        _may_delete(comment, photo, user_id)
        assert comment is not None
        async with self._db.comments_of(comment_id).transaction() as conn:
            if await comments_repo.remove(conn, comment_id):
                data = photo_counts.payload(comment.photo_id, -1, comment_id=comment_id)
                await self._jobs.enqueue(conn, COUNT_JOB, data)
        self._jobs.wake()

    async def forget(self, conn: Connection, photo_id: int) -> None:
        """In a photo's deletion transaction: its comments go too. Beside it
        the key's cascade does it; apart, a job in that transaction does."""
        if self._db.comments is not None:
            await self._jobs.enqueue(conn, FORGET_JOB, {"photo_id": photo_id})

    # -- the jobs -----------------------------------------------------------------

    async def _count_job(self, payload: dict[str, Any]) -> None:
        """A comment added or deleted in the comments' database: the photo's
        count on its shard, with the owner's notification (written for a new
        comment that still stands, forgotten for a deleted one) and the
        `comment.created` event, once (picshare/photo_counts.py)."""
        photo_id, comment_id = int(payload["photo_id"]), int(payload["comment_id"])
        added = int(payload["delta"]) > 0
        comment: CommentRecord | None = None
        author: UserRecord | None = None
        if added:
            async with self._db.comments_of(comment_id).read(PRIMARY) as conn:
                comment = await comments_repo.by_id(conn, comment_id)
            if comment is not None:
                async with self._db.of_user(comment.user_id).read(PRIMARY) as conn:
                    author = await users_repo.user_by_id(conn, comment.user_id)

        async def then(conn: Connection, notes: Notes, photo: PhotoRecord) -> None:
            if not added:
                await notes.comment_deleted(comment_id)
            elif comment is not None and author is not None:
                await notes.commented(photo, author, comment)
                await self._events.comment_created(conn, photo, author, comment)

        gone = await photo_counts.apply(
            db=self._db,
            notifier=self._notifier,
            job=COUNT_JOB,
            column=photos_repo.COMMENT_COUNT,
            data=payload,
            then=then,
        )
        self._events.committed()
        if gone:
            # Made while the photo was being deleted, after its comments went.
            await self._forget_job({"photo_id": photo_id})
        await self._cached.photo_changed(photo_id)

    async def _forget_job(self, payload: dict[str, Any]) -> None:
        photo_id = int(payload["photo_id"])
        async with self._db.comments_of(photo_id).transaction() as conn:
            await comments_repo.forget_photo(conn, photo_id)


def _may_delete(comment: CommentRecord | None, photo: PhotoRecord | None, user_id: int) -> None:
    if comment is None or photo is None:
        raise NotFound("no such comment")
    if not privacy.can_delete_comment(comment.user_id, photo, user_id):
        raise Forbidden("only the comment's author or the photo's owner can delete it")


def _comment_text(text: object) -> str:
    if not isinstance(text, str):
        raise invalid("text", "is required")
    clean = unicodedata.normalize("NFC", text.replace("\r\n", "\n").strip())
    if not 1 <= len(clean) <= MAX_COMMENT:
        raise InvalidInput([*invalid("text", f"must be 1 to {MAX_COMMENT} characters").errors])
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in clean):
        raise invalid("text", "must not contain control characters")
    return clean


async def _insert(conn: Connection, photo_id: int, user: UserRecord, text: str) -> CommentRecord:
    """The comment's row, by `user` (their name as it is now, copied)."""
    return await comments_repo.add(
        conn,
        photo_id=photo_id,
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        text=text,
    )

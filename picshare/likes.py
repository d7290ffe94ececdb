"""Likes: where they live, liking and unliking, and `liked_by_me` for pages.

Where likes live is the LIKES table group's question (storage/table_groups.py),
answered once in `Shards.likes` / `likes_of`; this module is the one that
acts on the answer:

- with the rest (the default): a like lives with its photo, on the photo's
  shard, and one transaction there adds it, moves the photo's like_count,
  writes the owner's notification and the `photo.liked` event;
- in a database of their own (`PICSHARE_DATABASE_GROUP_LIKES_URL`): the
  like's transaction there adds the row and enqueues a `likes.count` job
  (its outbox: it commits or rolls back with the like); the job moves the
  photo's like_count on the photo's shard and writes the notification and
  the event in that same transaction, once however often it runs (a key it
  records there, `processed_events`). The count and the notification lag
  the like by the job's pickup (a few milliseconds; the enqueue wakes the
  runner; picshare/photo_counts.py); the like itself, and so `liked_by_me`, is there at once. Lists
  read `liked_by_me` for a whole page in one query to the likes' database
  (`mark`); a deleted photo's likes go by a job (`forget`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from picshare import photo_access, photo_counts, privacy
from picshare.caching import CachedReads
from picshare.errors import NotFound
from picshare.jobs import JobKind, JobRunner
from picshare.notify import Notes, Notifier
from picshare.outbox import Outbox
from storage import likes_repo, photos_repo, social_repo, users_repo
from storage.db import Connection
from storage.records import PhotoRecord, UserRecord
from storage.router import PRIMARY, read_your_writes
from storage.shards import Shards

COUNT_JOB = "likes.count"
FORGET_JOB = "likes.forget_photo"


@dataclass(frozen=True, slots=True)
class LikeState:
    like_count: int
    liked: bool


class Likes:
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
        return f"<Likes apart={self._db.likes is not None}>"

    @property
    def here(self) -> bool:
        """Whether likes live beside their photos (a photo list may ask for
        `liked_by_me` in its own statement: storage/photos_repo.py)."""
        return self._db.likes is None

    def job_kinds(self) -> dict[str, JobKind]:
        return {COUNT_JOB: JobKind(self._count_job), FORGET_JOB: JobKind(self._forget_job)}

    # -- liking -----------------------------------------------------------------

    async def like(self, photo_id: int, user: UserRecord) -> LikeState:
        if self._db.likes is None:
            async with self._notifier.transaction(self._db.photos_of(photo_id)) as (conn, notes):
                photo = await photos_repo.photo_for(conn, photo_id, user.id)
                if photo is None or not privacy.can_react(photo):
                    raise NotFound("no such photo")
                added, count = await social_repo.like(conn, photo_id, user.id)
                if added:
                    await notes.liked(photo, user)
                    await self._events.photo_liked(conn, photo, user)
            self._events.committed()
            await self._changed(photo_id, user.id)
            return LikeState(count, True)
        photo = await self._visible(photo_id, user.id)
        if not privacy.can_react(photo):
            raise NotFound("no such photo")
        made = await self._apart(photo_id, user.id, 1)
        await self._changed(photo_id, user.id)
        # The count once the job has run (unless other likes are on the way).
        return LikeState(photo.like_count + made, True)

    async def unlike(self, photo_id: int, user: UserRecord) -> LikeState:
        if self._db.likes is None:
            async with self._db.photos_of(photo_id).transaction() as conn:
                if await photos_repo.photo_for(conn, photo_id, user.id) is None:
                    raise NotFound("no such photo")
                count = await social_repo.unlike(conn, photo_id, user.id)
            await self._changed(photo_id, user.id)
            return LikeState(count, False)
        photo = await self._visible(photo_id, user.id)
        removed = await self._apart(photo_id, user.id, -1)
        await self._changed(photo_id, user.id)
        return LikeState(max(photo.like_count - removed, 0), False)

    async def _visible(self, photo_id: int, viewer_id: int) -> PhotoRecord:
        # From the primary: the privacy rule is decided on fresh data.
        photo = await photo_access.visible_photo(self._db, photo_id, viewer_id, PRIMARY)
        if photo is None:
            raise NotFound("no such photo")
        return photo

    async def _apart(self, photo_id: int, user_id: int, delta: int) -> int:
        """Add (1) or remove (-1) the like in the likes' database, with its
        count job in the same transaction; 1 if a row changed, else 0."""
        async with self._db.likes_of(photo_id).transaction() as conn:
            change = likes_repo.add if delta > 0 else likes_repo.remove
            changed = await change(conn, photo_id, user_id)
            if changed:
                data = photo_counts.payload(photo_id, delta, user_id=user_id)
                await self._jobs.enqueue(conn, COUNT_JOB, data)
        if changed:
            self._jobs.wake()
        return int(changed)

    async def _changed(self, photo_id: int, user_id: int) -> None:
        await self._cached.photo_changed(photo_id)
        await self._cached.feed_changed(user_id)  # liked_by_me in the liker's feed

    # -- reading ----------------------------------------------------------------

    async def liked(self, viewer_id: int, photo_id: int) -> bool:
        async with self._db.likes_of(photo_id).read(read_your_writes(viewer_id)) as conn:
            return photo_id in await likes_repo.liked_among(conn, viewer_id, [photo_id])

    async def mark(self, viewer_id: int | None, photos: list[PhotoRecord]) -> list[PhotoRecord]:
        """`photos` with liked_by_me set, where the statement that read them
        could not (`here` is False): one query per database holding likes."""
        if self.here or viewer_id is None or not photos:
            return photos
        liked: set[int] = set()
        for db, ids in self._db.by_likes([p.id for p in photos]):
            async with db.read(read_your_writes(viewer_id)) as conn:
                liked |= await likes_repo.liked_among(conn, viewer_id, ids)
        if not liked:
            return photos
        return [replace(p, liked_by_me=True) if p.id in liked else p for p in photos]

    # -- a photo's deletion -------------------------------------------------------

    async def forget(self, conn: Connection, photo_id: int) -> None:
        """In a photo's deletion transaction: its likes go too. Beside it the
        key's cascade does it; apart, a job in that transaction does."""
        if self._db.likes is not None:
            await self._jobs.enqueue(conn, FORGET_JOB, {"photo_id": photo_id})

    # -- the jobs -----------------------------------------------------------------

    async def _count_job(self, payload: dict[str, Any]) -> None:
        """A like added or removed in the likes' database: the photo's count
        on its shard, and for a new like its owner's notification and the
        `photo.liked` event, once (picshare/photo_counts.py)."""
        photo_id, user_id = int(payload["photo_id"]), int(payload["user_id"])
        liker: UserRecord | None = None
        if int(payload["delta"]) > 0:
            async with self._db.of_user(user_id).read(PRIMARY) as conn:
                liker = await users_repo.user_by_id(conn, user_id)

        async def then(conn: Connection, notes: Notes, photo: PhotoRecord) -> None:
            if liker is not None:
                await notes.liked(photo, liker)
                await self._events.photo_liked(conn, photo, liker)

        gone = await photo_counts.apply(
            db=self._db,
            notifier=self._notifier,
            job=COUNT_JOB,
            column=photos_repo.LIKE_COUNT,
            data=payload,
            then=then,
        )
        self._events.committed()
        if gone:
            # Liked while it was being deleted, after its likes were forgotten.
            await self._forget_job({"photo_id": photo_id})
        await self._cached.photo_changed(photo_id)

    async def _forget_job(self, payload: dict[str, Any]) -> None:
        photo_id = int(payload["photo_id"])
        async with self._db.likes_of(photo_id).transaction() as conn:
            await likes_repo.forget_photo(conn, photo_id)

"""Photos: upload, read, list, delete; and the jobs that render and collect their blobs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from picshare import photo_access, privacy
from picshare.caching import CachedReads
from picshare.comments import Comments
from picshare.config import FeedSettings, MediaSettings, UploadSettings
from picshare.consumers import Consumer, consumer
from picshare.domain_events import DomainEvent
from picshare.errors import (
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
    Unprocessable,
    UnsupportedMedia,
)
from picshare.jobs import JobKind, JobRunner, PermanentJobError
from picshare.likes import Likes
from picshare.media import (
    MediaError,
    MediaWorkers,
    ProbeResult,
    RenditionSpec,
    WorkersRestarted,
    make_original,
    probe_image,
    render_display,
)
from picshare.media.source import local_file
from picshare.notify import CONSUMER as NOTIFICATIONS_CONSUMER
from picshare.notify import Notifier
from picshare.outbox import Outbox
from picshare.pagination import Page, decode_cursor, newest, page_of
from picshare.photo_counts import CountBehind
from picshare.staging import StagedUpload
from picshare.text import clean_caption, normalize_tag, parse_tags
from storage import notifications_repo, outbox_repo, photos_repo, social_repo, users_repo
from storage.blobs import BlobStore
from storage.cache.memo import IdentityMemo
from storage.db import Connection
from storage.records import ModerationState, PhotoRecord, PhotoStatus
from storage.router import ANY, PRIMARY, Databases, read_your_writes
from storage.shards import Shards

T = TypeVar("T")

log = logging.getLogger(__name__)

RENDER_JOB = "photo.render"
ORIGINAL_JOB = "photo.original"
COLLECT_JOB = "blobs.collect"
NOTIFY_JOB = "photo.notify_followers"
FORGET_JOB = "photo.forget_notifications"
# Where photos live apart from their owners (`Shards.photos`): an upload's or
# a deletion's move of the owner's photo_count, enqueued in its transaction.
OWNER_COUNT_JOB = "photos.owner_count"
# The consumer of domain events this service runs (picshare/consumers.py).
RENDITIONS = "renditions"


class PhotoService:
    __slots__ = (
        "_blobs",
        "_cached",
        "_comments",
        "_db",
        "_events",
        "_feed",
        "_front_pages",
        "_jobs",
        "_likes",
        "_media",
        "_moderated",
        "_notifier",
        "_spec",
        "_uploads",
    )

    def __init__(
        self,
        *,
        db: Shards,
        blobs: BlobStore,
        media: MediaWorkers,
        jobs: JobRunner,
        uploads: UploadSettings,
        renditions: MediaSettings,
        feed: FeedSettings,
        notifier: Notifier,
        likes: Likes,
        comments: Comments,
        cached: CachedReads,
        events: Outbox,
        moderated: bool = False,
    ) -> None:
        """`moderated`: a moderation service is configured, so new photos
        wait for its verdict as well as their renditions (picshare/moderation.py)."""
        self._notifier = notifier
        self._likes = likes
        self._comments = comments
        self._moderated = moderated
        self._events = events
        self._cached = cached
        self._front_pages: IdentityMemo[list[PhotoRecord], Page[PhotoRecord]] = IdentityMemo(
            max_entries=16
        )
        self._db = db
        self._feed = feed
        self._blobs = blobs
        self._media = media
        self._jobs = jobs
        self._uploads = uploads
        self._spec = RenditionSpec(
            large_width=renditions.large_width,
            medium_width=renditions.medium_width,
            thumb_size=renditions.thumb_size,
            jpeg_quality=renditions.jpeg_quality,
            max_pixels=uploads.max_pixels,
        )

    def job_kinds(self) -> dict[str, JobKind]:
        return {
            RENDER_JOB: JobKind(self._render_job, self._render_failed),
            # One at a time: a rotated 24 MP original is a full decode and
            # re-encode; the other job slots and media workers stay free for
            # the next photos' renditions and uploads.
            ORIGINAL_JOB: JobKind(self._original_job, max_running=1),
            COLLECT_JOB: JobKind(self._collect_job),
            NOTIFY_JOB: JobKind(self._notify_job),
            FORGET_JOB: JobKind(self._forget_job),
            OWNER_COUNT_JOB: JobKind(self._owner_count_job),
            photo_access.OWNER_JOB: JobKind(self._owner_job),
        }

    def consumers(self) -> list[Consumer]:
        """Of domain events: renditions for a new photo (a process of its own
        can run them, `run.py worker --consumers renditions`). Its followers'
        notifications once it is ready are the `notifications` consumer's
        (`Notifier.consumer(photos.on_ready)`)."""
        return [consumer(RENDITIONS, self._on_uploaded, on_dead=self._on_uploaded_dead)]

    async def _on_uploaded(self, event: DomainEvent) -> None:
        # Idempotent by the photo's state: a repeat finds it ready and stops.
        await self._render_job({"photo_id": int(event.data["photo_id"]), "event_id": event.id})

    async def _on_uploaded_dead(self, event: DomainEvent, error: str) -> None:
        await self._render_failed({"photo_id": int(event.data["photo_id"])}, error)

    async def on_ready(self, event: DomainEvent) -> None:
        # Idempotent by the event, per shard (below), and by its rows: one
        # photo notification per user and photo.
        await self._notify_job({"photo_id": int(event.data["photo_id"]), "event_id": event.id})

    def check_text(self, caption: str, tags: str) -> tuple[str, list[str]]:
        """Validate caption and tags (before the file is even read, when possible)."""
        errors: list[FieldError] = []
        clean = clean_caption(caption, max_chars=self._uploads.max_caption_chars, errors=errors)
        tag_list = parse_tags(
            tags,
            clean,
            max_tags=self._uploads.max_tags,
            max_chars=self._uploads.max_tag_chars,
            errors=errors,
        )
        if errors:
            raise InvalidInput(errors)
        return clean, tag_list

    async def create(
        self, *, owner_id: int, staged: StagedUpload, caption: str, tags: list[str]
    ) -> PhotoRecord:
        """Check the staged file by its content, store it, and commit the row with its job."""
        if staged.size == 0:
            raise InvalidInput([FieldError("file", "is empty")])
        probe = await self._probe(staged)
        key = f"uploads/{staged.sha256}"
        owner = await self._owner_fields(owner_id)
        try:
            # The photo lives with its owner, on the owner's shard (or in the
            # photos' own database: Shards.photos).
            async with self._blob_keys_locked(self._db.photos_of(owner_id), [key]) as conn:
                await staged.commit(key)
                photo_id = await photos_repo.insert_photo(
                    conn,
                    owner_id=owner_id,
                    caption=caption,
                    tags=tags,
                    mime=probe.mime,
                    width=probe.width,
                    height=probe.height,
                    size=staged.size,
                    upload_key=key,
                    moderated=self._moderated,
                    owner=owner,
                )
                if owner is not None:
                    await self._jobs.enqueue(conn, OWNER_COUNT_JOB, _owner_count(owner_id, 1))
                await self._events.photo_uploaded(conn, photo_id, owner_id, tags)
        except BaseException:
            # The row did not commit: the blob must not outlive it (unless another
            # photo uses the same bytes, which `_collect` checks).
            await asyncio.shield(self._collect([key]))
            raise
        self._events.committed()
        if owner is not None:
            self._jobs.wake()
        await self._cached.users_changed(owner_id)  # photo_count
        await self._cached.feed_changed(owner_id)
        photo = await self._fetch(photo_id, owner_id)
        assert photo is not None
        return photo

    async def _probe(self, staged: StagedUpload) -> ProbeResult:
        try:
            async with local_file(staged.read()) as path:
                return await self._media.run(probe_image, str(path), self._uploads.max_pixels)
        except WorkersRestarted as exc:
            raise Unavailable(str(exc)) from None
        except MediaError as exc:
            if exc.kind == "unsupported":
                raise UnsupportedMedia(exc.message, field="file") from None
            raise Unprocessable(exc.message, field="file") from None

    async def get(self, photo_id: int, viewer_id: int | None) -> PhotoRecord:
        """From the cache; the viewer's own flags from the database. One query
        on the photo's shard whatever is cached: an entry that is missing is
        read together with the flags (picshare/caching.py)."""
        photo, flags = await self._cached.photo(photo_id, viewer_id)
        if photo is None:
            raise NotFound("no such photo")
        liked = follows = False
        if flags is not None:
            # Read with the entry that was missing (the like: false there
            # where likes live apart, asked below).
            liked, follows = flags
            if (
                viewer_id is not None
                and not self._likes.here
                and privacy.can_see_photo(photo, viewer_id, follows=follows)
            ):
                liked = await self._likes.liked(viewer_id, photo.id)
        elif viewer_id is not None and self._likes.here:
            # Both on the photo's shard: its likes live there, and so does the
            # owner-side row of every follow of its owner.
            async with self._db.of_id(photo.id).read(read_your_writes(viewer_id)) as conn:
                liked, follows = await social_repo.viewer_flags(
                    conn, viewer_id, photo.id, photo.owner_id
                )
        elif viewer_id is not None:
            # The follow from the photo's shard, the like from the likes'.
            async with self._db.of_id(photo.id).read(read_your_writes(viewer_id)) as conn:
                follows = await social_repo.follows(conn, viewer_id, photo.owner_id)
            if privacy.can_see_photo(photo, viewer_id, follows=follows):
                liked = await self._likes.liked(viewer_id, photo.id)
        if not privacy.can_see_photo(photo, viewer_id, follows=follows):
            raise NotFound("no such photo")
        # The cached record says False: keep that shared object unless it differs.
        return replace(photo, liked_by_me=True) if liked else photo

    # -- lists across shards ------------------------------------------------------
    #
    # A list of many owners' photos asks every shard holding some of them at
    # once (`Shards.gather`, each within its time budget) for its own newest
    # page below the cursor, and keeps the newest of them all: ids sort by
    # time, so the cursor (the last id shown) works across shards, with no gap
    # and no repeat. A shard that did not answer leaves the page `partial`.

    async def browse(
        self,
        *,
        username: str | None,
        tag: str | None,
        cursor: str | None,
        limit: int,
        viewer_id: int | None,
    ) -> Page[PhotoRecord]:
        """`GET /photos` and GraphQL's `photos`: a user's (with that tag, if
        given), else a tag's, else the newest public photos."""
        if username:
            return await self.list_by_user(
                username=username, cursor=cursor, limit=limit, viewer_id=viewer_id, tag=tag
            )
        if tag:
            return await self.list_tagged(tag=tag, cursor=cursor, limit=limit, viewer_id=viewer_id)
        return await self.list_public(cursor=cursor, limit=limit, viewer_id=viewer_id)

    async def list_public(
        self, *, cursor: str | None, limit: int, viewer_id: int | None
    ) -> Page[PhotoRecord]:
        before = decode_cursor(cursor)

        async def read() -> tuple[list[PhotoRecord], bool]:
            return await self._newest(
                lambda conn, _db: photos_repo.list_public(
                    conn,
                    viewer_id=viewer_id,
                    before=before,
                    limit=limit + 1,
                    likes_here=self._likes.here,
                ),
                viewer_id=viewer_id,
                count=limit + 1,
            )

        # The first page as a signed-out visitor sees it is the same for all of
        # them: the front page of the site, read far more than anything else.
        if before is None and viewer_id is None:
            rows, partial = await self._cached.public_first_page(limit + 1, read)
            if partial:
                return page_of(rows, limit, partial=True)
            # The same rows object while the entry holds: so is the page, and
            # the JSON made of it (handlers/serialize.py).
            return self._front_pages(rows, lambda rows: page_of(rows, limit, shared=True))
        rows, partial = await read()
        return page_of(rows, limit, partial=partial)

    async def list_tagged(
        self, *, tag: str, cursor: str | None, limit: int, viewer_id: int | None
    ) -> Page[PhotoRecord]:
        before = decode_cursor(cursor)
        clean = normalize_tag(tag)
        if not clean or len(clean) > self._uploads.max_tag_chars:
            raise NotFound("no such tag")
        followees = await photo_access.followees(self._db, viewer_id)
        rows, partial = await self._newest(
            lambda conn, _db: photos_repo.list_tagged(
                conn,
                viewer_id=viewer_id,
                tag=clean,
                before=before,
                limit=limit + 1,
                likes_here=self._likes.here,
                followees=followees,
            ),
            viewer_id=viewer_id,
            count=limit + 1,
        )
        return page_of(rows, limit, partial=partial)

    async def list_by_user(
        self,
        *,
        username: str,
        cursor: str | None,
        limit: int,
        viewer_id: int | None,
        tag: str | None = None,
    ) -> Page[PhotoRecord]:
        before = decode_cursor(cursor)
        # The owner from the cache, which the primary fills and the owner's
        # own change invalidates: an account turned private is private here
        # at once, even while a replica still has it public.
        owner = await self._cached.user_by_name(username)
        if owner is None:
            raise NotFound("no such user, or the account is private")
        consistency = read_your_writes(viewer_id)

        async def read(conn: Connection, followees: list[int] | None) -> list[PhotoRecord]:
            return await photos_repo.list_by_owner(
                conn,
                viewer_id=viewer_id,
                owner_id=owner.id,
                before=before,
                limit=limit + 1,
                tag=normalize_tag(tag) if tag else None,
                likes_here=self._likes.here,
                followees=followees,
            )

        # One shard: the owner's photos, and the follows that may show them.
        async with self._db.of_user(owner.id).read(consistency) as conn:
            if not await privacy.may_see_account(conn, owner, viewer_id):
                # A private account's photos are not even said to exist.
                raise NotFound("no such user, or the account is private")
            if self._db.photos is None:
                rows = await read(conn, None)
        if self._db.photos is not None:
            # The photos apart: the account is visible to this viewer (just
            # decided), which is all the follow the rule needs of its owner.
            async with self._db.photos_of(owner.id).read(consistency) as conn:
                rows = await read(conn, [owner.id])
        return page_of(await self._likes.mark(viewer_id, rows), limit)

    async def feed(self, *, viewer_id: int, cursor: str | None, limit: int) -> Page[PhotoRecord]:
        """Fan-out on read (README, "The home feed"). On one database, the plan
        is chosen by how many accounts the viewer follows: per-followee probes
        for most people, a newest-first scan for those who follow very many.
        With shards, the viewer's following list comes from their shard (the
        follower side of each follow is there), then each shard holding some
        of them is asked for its followees' photos, with the same choice of
        plan by how many of them it holds, and the pages merge by id."""
        before = decode_cursor(cursor)

        async def read() -> tuple[list[PhotoRecord], bool]:
            if self._db.single and self._db.photos is None:
                return await self._feed_one_database(viewer_id, before, limit + 1), False
            return await self._feed_across(viewer_id, before, limit + 1)

        # The first page is what everyone opens: cached briefly (picshare/caching.py).
        rows, partial = await (
            self._cached.feed_first_page(viewer_id, limit, read) if before is None else read()
        )
        return page_of(rows, limit, partial=partial)

    async def _feed_one_database(
        self, viewer_id: int, before: int | None, count: int
    ) -> list[PhotoRecord]:
        async with self._db.of_user(viewer_id).read(read_your_writes(viewer_id)) as conn:
            viewer = await users_repo.user_by_id(conn, viewer_id)
            dense = viewer is not None and viewer.following_count >= self._feed.dense_following
            rows = await photos_repo.home_feed(
                conn,
                viewer_id=viewer_id,
                before=before,
                limit=count,
                dense=dense,
                likes_here=self._likes.here,
            )
        return await self._likes.mark(viewer_id, rows)

    async def _feed_across(
        self, viewer_id: int, before: int | None, count: int
    ) -> tuple[list[PhotoRecord], bool]:
        consistency = read_your_writes(viewer_id)
        async with self._db.of_user(viewer_id).read(consistency) as conn:
            followees = await social_repo.followee_ids(conn, viewer_id)
        owners = dict(self._db.by_photos([viewer_id, *followees]))
        return await self._newest(
            lambda conn, db: photos_repo.feed_of(
                conn,
                viewer_id=viewer_id,
                owners=owners[db],
                before=before,
                limit=count,
                dense=len(owners[db]) >= self._feed.dense_following,
                likes_here=self._likes.here,
            ),
            viewer_id=viewer_id,
            count=count,
            among=list(owners),
        )

    async def _newest(
        self,
        fetch: Callable[[Connection, Databases], Awaitable[list[PhotoRecord]]],
        *,
        viewer_id: int | None,
        count: int,
        among: list[Databases] | None = None,
    ) -> tuple[list[PhotoRecord], bool]:
        """`fetch(conn, db)` on every shard (or `among`) at once; the newest
        `count` of all, and whether a shard was left out."""

        async def on(db: Databases) -> list[PhotoRecord]:
            async with db.read(read_your_writes(viewer_id)) as conn:
                return await fetch(conn, db)

        found = await self._db.gather(
            on, among=list(self._db.photo_dbs) if among is None else among
        )
        rows = await self._likes.mark(viewer_id, newest(found.results, count))
        return rows, found.partial

    async def delete(self, photo_id: int, user_id: int) -> None:
        apart = self._db.photos is not None
        # Apart, whether the user may see it is asked first (the follow is
        # not beside the photo); the owner's own delete is decided below.
        if apart and await photo_access.visible_photo(self._db, photo_id, user_id, PRIMARY) is None:
            raise NotFound("no such photo")
        async with self._notifier.transaction(self._db.photos_of(photo_id)) as (conn, notes):
            if not apart:
                seen = await photos_repo.photo_for(conn, photo_id, user_id)
                if seen is None:
                    raise NotFound("no such photo")
                await photos_repo.lock_owner(conn, seen.owner_id)
            photo = await photos_repo.lock_photo(conn, photo_id)
            if photo is None:
                raise NotFound("no such photo")
            if not privacy.can_delete_photo(photo, user_id):
                raise Forbidden("only the photo's owner can delete it")
            await photos_repo.delete_photo(conn, photo, owner_here=not apart)
            if apart:
                await self._jobs.enqueue(conn, OWNER_COUNT_JOB, _owner_count(photo.owner_id, -1))
            # Its notifications go with it: those here now (its owner's, and
            # followers' of this shard); the other shards' by a job. Where
            # notifications have a database of their own, all of them there.
            await notes.photo_deleted(photo_id)
            await self._likes.forget(conn, photo_id)
            await self._comments.forget(conn, photo_id)
            if not self._db.single and self._db.inbox is None:
                await self._jobs.enqueue(conn, FORGET_JOB, {"photo_id": photo_id})
            keys = [photo.upload_key, *photo.rendition_keys]
            await self._jobs.enqueue(conn, COLLECT_JOB, {"keys": keys})
            await self._events.photo_deleted(conn, photo)
        self._jobs.wake()
        self._events.committed()
        await self._cached.photo_changed(photo_id)
        await self._cached.users_changed(user_id)
        await self._cached.feed_changed(user_id)
        await self._cached.public_changed()

    async def media_is_public(self, key: str) -> bool:
        """Does a photo everyone may see use this blob? A key names no shard
        (content-addressed: photos on several shards may share it), so every
        shard is asked at once and any yes wins. Asking costs one indexed
        query per shard; a key->photo record kept in the catalog would cost a
        catalog write per rendition and one more thing to keep consistent.
        A shard that does not answer cannot say yes: the blob then needs a
        signed URL, as if private (the safe side)."""

        async def public_on(db: Databases) -> bool:
            # A replica answers most; a "no" is checked on the primary, since a
            # lagging replica may not have seen the photo turn ready yet.
            async with db.read(ANY) as conn:
                if await photos_repo.key_is_public(conn, key):
                    return True
            async with db.read(PRIMARY) as conn:
                return await photos_repo.key_is_public(conn, key)

        return any((await self._db.gather(public_on, among=self._db.photo_dbs)).results)

    async def _fetch(self, photo_id: int, viewer_id: int | None) -> PhotoRecord | None:
        return await photo_access.visible_photo(
            self._db, photo_id, viewer_id, read_your_writes(viewer_id)
        )

    async def _owner_fields(self, owner_id: int) -> photos_repo.OwnerFields | None:
        """What a new photo copies of its owner, where it lives apart from the
        owner (else None: its database copies them, migration 0019)."""
        if self._db.photos is None:
            return None
        async with self._db.of_user(owner_id).read(PRIMARY) as conn:
            user = await users_repo.user_by_id(conn, owner_id)
        if user is None:
            raise NotFound("no such user")
        return photos_repo.OwnerFields(user.username, user.display_name, user.private)

    # -- jobs ---------------------------------------------------------------

    async def _owner_count_job(self, payload: dict[str, Any]) -> None:
        """An upload's or a deletion's move of the owner's photo_count, on the
        owner's database, once (`processed_events`). A deletion's run before
        its upload's would go below zero: it fails and runs again after, so
        the count converges to the photos' number. An upload's then brings
        the photos' copies of the owner up to date (one read just before a
        change of name or privacy converges)."""
        user_id, delta = int(payload["user_id"]), int(payload["delta"])
        async with self._db.of_user(user_id).transaction() as conn:
            if await outbox_repo.first_time(conn, OWNER_COUNT_JOB, int(payload["key"])):
                exists = await users_repo.user_by_id(conn, user_id) is not None
                if exists and await users_repo.count_photos(conn, user_id, delta) is None:
                    raise CountBehind(f"user {user_id}: photo_count {delta:+d} before its upload")
        if delta > 0:
            await photo_access.sync_owner(self._db, user_id)
        await self._cached.users_changed(user_id)

    async def _owner_job(self, payload: dict[str, Any]) -> None:
        """A user's new display name or privacy, on their photos apart."""
        user_id = int(payload["user_id"])
        await photo_access.sync_owner(self._db, user_id)
        await self._cached.users_changed(user_id)
        await self._cached.public_changed()
        await self._cached.feed_changed(user_id)

    async def _render_job(self, payload: dict[str, Any]) -> None:
        """Make what the photo needs to be shown, then mark it `ready`.

        The full-size original is not on this path (it costs more than the
        rest together): the same transaction enqueues ORIGINAL_JOB for it,
        so it is as durable as the photo being ready. Until it is made, the
        photo's 'original' is its 'large' rendition, a real metadata-free image.
        """
        photo_id = int(payload["photo_id"])
        home = self._db.photos_of(photo_id)
        async with home.read(PRIMARY) as conn:
            photo = await photos_repo.photo_by_id(conn, photo_id)
        if photo is None or photo.large_key is not None or photo.status not in _RENDERABLE:
            return  # deleted meanwhile, or a repeat of a job that already finished
        result = await self._render(render_display, photo)
        # A few hundred KB: hashing them takes well under a millisecond.
        keys = {name: _blob_key(data) for name, data in result.renditions.items()}
        blobs = {keys[name]: data for name, data in result.renditions.items()}
        keys["original"] = keys["large"]
        async with self._blob_keys_locked(home, blobs) as conn:
            await self._put_all(blobs)
            if "event_id" in payload:  # run by the renditions consumer: its record
                await outbox_repo.first_time(conn, RENDITIONS, int(payload["event_id"]))
            status = await photos_repo.mark_ready(
                conn,
                photo_id,
                keys=keys,
                width=result.width,
                height=result.height,
                blurhash=result.blurhash,
            )
            if status is not None:
                await self._jobs.enqueue(conn, ORIGINAL_JOB, {"photo_id": photo_id})
                await self._announce_if_ready(conn, photo_id)
            else:
                await self._jobs.enqueue(conn, COLLECT_JOB, {"keys": sorted(blobs)})
        # Readers first: the jobs just enqueued can start a moment later.
        await self._cached.photo_changed(photo_id)
        await self._cached.public_changed()  # a new photo on the front page
        self._jobs.wake()
        self._events.committed()

    async def moderate(self, photo_id: int, verdict: ModerationState) -> PhotoStatus:
        """Record a moderation verdict (the latest one wins): approved, the
        photo is shown once its renditions exist; rejected, only its owner
        sees it. Its status after; NotFound if there is no such photo."""
        async with self._db.photos_of(photo_id).transaction() as conn:
            if not await photos_repo.set_verdict(conn, photo_id, verdict):
                raise NotFound("no such photo")
            await self._announce_if_ready(conn, photo_id)
            photo = await photos_repo.photo_by_id(conn, photo_id)
        assert photo is not None  # its row is locked by this transaction until the commit
        self._events.committed()
        await self._cached.photo_changed(photo_id)
        await self._cached.public_changed()
        await self._cached.feed_changed(photo.owner_id)
        return photo.status

    async def upload_of(self, photo_id: int) -> tuple[str, str] | None:
        """A photo's upload as received: its blob key and type (None: no such photo)."""
        async with self._db.photos_of(photo_id).read(PRIMARY) as conn:
            photo = await photos_repo.photo_by_id(conn, photo_id)
        return None if photo is None else (photo.upload_key, photo.mime)

    async def moderation_state(self, photo_id: int) -> ModerationState | None:
        """Where the photo stands with moderation (None: no such photo), from the primary."""
        async with self._db.photos_of(photo_id).read(PRIMARY) as conn:
            return await photos_repo.moderation_of(conn, photo_id)

    async def _announce_if_ready(self, conn: Connection, photo_id: int) -> None:
        """After a change that may have made the photo ready (its renditions,
        a verdict), in that change's transaction: `photo.ready` the first time."""
        if await photos_repo.announce_ready(conn, photo_id):
            await self._events.photo_ready(conn, photo_id)

    async def _put_all(self, blobs: dict[str, bytes]) -> None:
        # Each write waits for its own fsync: side by side, they overlap.
        await asyncio.gather(*(self._blobs.put_bytes(key, data) for key, data in blobs.items()))

    async def _render(self, fn: Callable[[str, RenditionSpec], T], photo: PhotoRecord) -> T:
        """Run a media function on the photo's upload in a worker; a file it
        cannot read fails the job for good (retrying would not help)."""
        try:
            async with local_file(self._blobs.read(photo.upload_key)) as source:
                return await self._media.run(fn, str(source), self._spec)
        except MediaError as exc:
            raise PermanentJobError(exc.message) from None

    async def _original_job(self, payload: dict[str, Any]) -> None:
        """Replace the stand-in original ('large') of a ready photo with the real one."""
        photo_id = int(payload["photo_id"])
        home = self._db.photos_of(photo_id)
        async with home.read(PRIMARY) as conn:
            photo = await photos_repo.photo_by_id(conn, photo_id)
        if photo is None or photo.original_key != photo.large_key:
            return  # deleted meanwhile, or a repeat of a job that already finished
        original = await self._render(make_original, photo)
        # The full-size original can be tens of MB: hashed in a thread, not on the loop.
        key = await asyncio.to_thread(_blob_key, original.data)
        async with self._blob_keys_locked(home, [key]) as conn:
            await self._blobs.put_bytes(key, original.data)
            made = await photos_repo.set_original(conn, photo_id, key)
            if not made:
                await self._jobs.enqueue(conn, COLLECT_JOB, {"keys": [key]})
        await self._cached.photo_changed(photo_id)
        if not made:
            self._jobs.wake()

    async def _render_failed(self, payload: dict[str, Any], error: str) -> None:
        photo_id = int(payload["photo_id"])
        async with self._db.photos_of(photo_id).write() as conn:
            await photos_repo.mark_failed(conn, photo_id)
        await self._cached.photo_changed(int(payload["photo_id"]))

    async def _notify_job(self, payload: dict[str, Any]) -> None:
        """A photo became ready: tell the owner's followers.

        They are listed on the owner's shard (every follow of the owner has a
        row there); each one's notification goes to their own shard, one
        transaction per shard. A shard that fails is tried again with the
        whole job: the shards already done absorb the repeat (one photo
        notification per user and photo, migration 0003), so nobody is told
        twice, and the others wait only for the job's next attempt."""
        photo_id = int(payload["photo_id"])
        home = self._db.photos_of(photo_id)
        async with home.read(PRIMARY) as conn:
            photo = await photos_repo.photo_by_id(conn, photo_id)
        if photo is None or photo.status != PhotoStatus.READY:
            return
        # The follows live with the owner (the photos may not: Shards.photos).
        async with self._db.of_user(photo.owner_id).read(PRIMARY) as conn:
            followers = await notifications_repo.follower_ids(conn, photo.owner_id)
        failed: list[str] = []
        wrote: list[Databases] = []
        for db, user_ids in self._db.by_inbox(followers):
            try:
                async with self._notifier.transaction(db, here=True) as (conn, notes):
                    # Each database records its own part of the event: a
                    # redelivery skips the shards already told.
                    event_id = payload.get("event_id")
                    if event_id is None or await outbox_repo.first_time(
                        conn, NOTIFICATIONS_CONSUMER, int(event_id)
                    ):
                        await notes.photo_ready(photo, user_ids)
                wrote.append(db)
            except Exception as exc:
                # The other shards' followers are still told now, not after the retry.
                log.warning("photo %s: notifying on %s failed: %r", photo_id, db, exc)
                failed.append(db.primary.label)
        async with home.read(PRIMARY) as conn:
            gone = await photos_repo.photo_by_id(conn, photo_id) is None
        if gone:
            # Deleted while this ran: its deletion may have forgotten its
            # notifications before these were written, so these go now.
            for db in wrote:
                async with db.write() as conn:
                    await notifications_repo.forget_photo(conn, photo_id)
            return
        if failed:
            raise ShardsBehind(f"photo {photo_id}: followers on {', '.join(failed)} not told yet")

    async def _forget_job(self, payload: dict[str, Any]) -> None:
        """A deleted photo's notifications on the other shards (followers told
        of it). Each shard is done on its own; one that fails is tried again
        with the whole job, which the shards already done absorb."""
        photo_id = int(payload["photo_id"])
        if self._db.inbox is not None:
            return  # the deletion's own job told the notifications' database
        home = self._db.photos_of(photo_id)
        failed: list[str] = []
        for db in self._db.physical:
            if db is home:
                continue  # done in the deletion's own transaction
            try:
                async with db.write() as conn:
                    await notifications_repo.forget_photo(conn, photo_id)
            except Exception as exc:
                log.warning("photo %s: forgetting on %s failed: %r", photo_id, db, exc)
                failed.append(db.primary.label)
        if failed:
            raise ShardsBehind(f"photo {photo_id}: notifications on {', '.join(failed)} remain")

    async def _collect_job(self, payload: dict[str, Any]) -> None:
        await self._collect([str(k) for k in payload["keys"]])

    async def _collect(self, keys: list[str]) -> None:
        """Delete each blob no photo on any shard uses any more. The check asks
        every shard (a key names none) under the key's global lock; a shard
        that cannot answer keeps the blob (the job tries again), since it may
        hold a photo that uses it."""
        for key in keys:
            async with self._blob_keys_locked(None, [key]) as lock_conn:
                if not await self._key_in_use_anywhere(key, lock_conn):
                    await self._blobs.delete(key)

    async def _key_in_use_anywhere(self, key: str, lock_conn: Connection) -> bool:
        catalog = self._db.catalog
        for db in self._db.photo_dbs:
            if db is catalog:
                in_use = await photos_repo.key_in_use(lock_conn, key)
            else:
                # The primary: a replica may not have the row that now uses it.
                async with db.read(PRIMARY) as conn:
                    in_use = await photos_repo.key_in_use(conn, key)
            if in_use:
                return True
        return False

    @asynccontextmanager
    async def _blob_keys_locked(
        self, db: Databases | None, keys: Iterable[str]
    ) -> AsyncIterator[Connection]:
        """A transaction on `db` (the catalog when None) holding the per-key
        blob locks until it ends: "a row now uses this blob" (an upload, a
        rendition) against "delete this unused blob" (the collector).

        Photos on any shard may share a blob, so the locks are global: taken
        in the catalog. A transaction on another shard runs inside the
        catalog's and commits first, so its rows are visible to any collector
        that gets the lock next. When `db` is the catalog (one database, or
        the catalog's own shard) it is one transaction, as before shards; so
        one operation never holds two connections of one pool."""
        catalog = self._db.catalog
        async with catalog.transaction() as lock_conn:
            for key in sorted(keys):  # one order: no lock-order deadlocks
                await photos_repo.lock_blob_key(lock_conn, key)
            if db is None or db is catalog:
                yield lock_conn
            else:
                async with db.transaction() as conn:
                    yield conn


# Rendered while waiting for a verdict, and after a rejection too: its owner
# still sees it, and a later approval shows it at once.
_RENDERABLE = (PhotoStatus.PROCESSING, PhotoStatus.REJECTED)


class ShardsBehind(Exception):
    """Some shards could not be written yet: the job runs again for them."""


def _owner_count(user_id: int, delta: int) -> dict[str, Any]:
    """An owner count job's payload, with the key that makes it count once."""
    return {"key": secrets.randbits(63), "user_id": user_id, "delta": delta}


def _blob_key(rendition: bytes) -> str:
    return f"r/{hashlib.sha256(rendition).hexdigest()}.jpg"

"""The search service's index (README, "Tags and search"):

- `search_photos`, one row per photo with its caption words and what the
  privacy rule needs (owner, the owner's privacy, status);
- `search_users`, one row per account (username, display name, privacy);
- `search_tags`, each tag's photo count per source database.

The index is the SEARCH table group: on the database of what it indexes by
default (a photo's and a user's rows on the owner's shard, a shard's tag
counts on that shard), or all of it in a database of its own
(`PICSHARE_DATABASE_GROUP_SEARCH_URL`); `Shards.search_of` says which.
Rows are read on their source and written to the index in two steps, never
one statement across both.

It is fed by domain events, through the `search` consumer: a new photo
(with its tags), a photo made ready, a deleted photo (with its tags), a new
account, an account's privacy or display name changed. Each event makes the
rows it names what the photo, user or tag counts are now (read afresh, not
from the event, each row's writers taking turns), so redeliveries and
events out of order leave the index right; each is also recorded in
`processed_events` on the index's database in the transaction of its
write, so a repeat does nothing.

`run.py search reindex` fills the index from the photos, users and tags
already there: source by source, in batches, resuming where an interrupted
run stopped (photos and users; tags are few, read whole each run).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from picshare.consumers import Consumer, consumer
from picshare.domain_events import (
    PHOTO_DELETED,
    PHOTO_READY,
    PHOTO_UPLOADED,
    USER_CREATED,
    USER_UPDATED,
    DomainEvent,
)
from storage import outbox_repo, search_index_repo
from storage.db import Connection
from storage.router import PRIMARY, Databases
from storage.shards import Shards

SEARCH = "search"
PHOTO_EVENTS = frozenset({PHOTO_UPLOADED, PHOTO_READY, PHOTO_DELETED})
USER_EVENTS = frozenset({USER_CREATED, USER_UPDATED})
# Events that change photo counts of the tags they carry.
TAG_EVENTS = frozenset({PHOTO_UPLOADED, PHOTO_DELETED})
REINDEX_BATCH = 2_000
PHOTOS = "photos"
USERS = "users"

Progress = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True, slots=True)
class ReindexReport:
    databases: int
    photos: int
    resumed: bool
    users: int = 0
    tags: int = 0


class SearchIndexer:
    __slots__ = ("_db",)

    def __init__(self, *, db: Shards) -> None:
        self._db = db

    def __repr__(self) -> str:
        apart = " apart" if self._db.search_db is not None else ""
        return f"<SearchIndexer databases={len(self._db.physical)}{apart}>"

    def consumer(self) -> Consumer:
        return consumer(SEARCH, self._handle)

    async def _handle(self, event: DomainEvent) -> None:
        if event.type in USER_EVENTS:
            await self._sync_user(int(event.data["user_id"]), event)
        else:
            photo_id = int(event.data["photo_id"])
            tags = [str(t) for t in event.data.get("tags", ())] if event.type in TAG_EVENTS else []
            await self._sync_photo(photo_id, tags, event)

    async def index_photo(self, photo_id: int, tags: Sequence[str] = ()) -> None:
        """The photo's row (and these tags' counts) as they now are, outside
        any event (tools and tests that write photos themselves)."""
        await self._sync_photo(photo_id, list(tags), None)

    async def _sync_photo(self, photo_id: int, tags: list[str], event: DomainEvent | None) -> None:
        source = self._db.photos_of(photo_id)
        target = self._db.search_for(source)
        async with target.transaction() as conn:
            if event is not None and not await outbox_repo.first_time(conn, SEARCH, event.id):
                return
            await search_index_repo.lock_row(conn, photo_id)
            async with _reading(source, target, conn) as read:
                rows = await search_index_repo.photo_rows(read, [photo_id])
                if rows:
                    # The owner's privacy change (`_sync_user`) and this row
                    # take turns: read again once it is ours, the privacy of
                    # a change committed meanwhile is in it.
                    await search_index_repo.lock_row(conn, rows[0].owner_id)
                    rows = await search_index_repo.photo_rows(read, [photo_id])
                if rows and event is not None and event.type in TAG_EVENTS:
                    # The photo's own too (an event from before tags were carried).
                    tags = sorted(set(tags) | set(rows[0].tags))
                if tags:
                    await search_index_repo.lock_tags(conn, tags)
                    counts = await search_index_repo.tag_counts(read, tags)
            if rows:
                await search_index_repo.upsert_photos(conn, rows)
            else:
                await search_index_repo.forget_photos(conn, [photo_id])
            if tags:
                await search_index_repo.set_tag_counts(conn, self._tags_source(source), counts)

    async def _sync_user(self, user_id: int, event: DomainEvent) -> None:
        source = self._db.of_user(user_id)
        target = self._db.search_for(source)
        async with target.transaction() as conn:
            if not await outbox_repo.first_time(conn, SEARCH, event.id):
                return
            await search_index_repo.lock_row(conn, user_id)
            async with _reading(source, target, conn) as read:
                rows = await search_index_repo.user_rows(read, [user_id])
            if rows:
                await search_index_repo.upsert_users(conn, rows)
                # The owner's photos are indexed where the owner is.
                await search_index_repo.owner_privacy(conn, user_id, rows[0].private)
            else:
                await search_index_repo.forget_users(conn, [user_id])

    # -- reindex ---------------------------------------------------------------

    async def reindex(
        self, *, restart: bool = False, progress: Progress | None = None
    ) -> ReindexReport:
        """Index every photo, user and tag, source database by source
        database, in id order: a run that was interrupted goes on from its
        last batch (unless `restart`); a finished one starts a new pass.
        Rows of deleted photos and users, and tags gone, are pruned."""
        photos = users = tags = 0
        resumed = False
        for index, source in enumerate(self._db.physical):
            target = self._db.search_for(source)
            # With the index apart, other sources' rows share each id range.
            logicals = self._logicals_of(index) if target is not source else None
            # The photos (and tags) of this shard's users: on it, or in the
            # photos' own database (a site without shards then).
            photo_source = self._db.photos or source
            async with photo_source.read(PRIMARY) as conn:
                total = await search_index_repo.photo_count(conn)
            show = progress(f"search {index}", total) if progress is not None else None
            done, again = await self._reindex_kind(
                photo_source, target, index, PHOTOS, restart, logicals, show
            )
            photos += done
            resumed = resumed or again
            if show is not None:
                show(total)
            done, again = await self._reindex_kind(
                source, target, index, USERS, restart, logicals, None
            )
            users += done
            resumed = resumed or again
            tags += await self._reindex_tags(photo_source, target, self._tags_source(photo_source))
        for target in self._db.search_dbs:
            async with target.write() as conn:
                await search_index_repo.tidy(conn)
        return ReindexReport(
            databases=len(self._db.physical),
            photos=photos,
            resumed=resumed,
            users=users,
            tags=tags,
        )

    def _tags_source(self, source: Databases) -> int:
        """The number the index keeps a source's tag counts under: its shard's;
        the photos' own database, where there is one, is the only source."""
        return 0 if self._db.photos is not None else self._db.index_of(source)

    def _logicals_of(self, index: int) -> list[int] | None:
        if self._db.single:
            return None
        return [logical for logical, p in enumerate(self._db.map.placement) if p == index]

    async def _reindex_kind(
        self,
        source: Databases,
        target: Databases,
        index: int,
        kind: str,
        restart: bool,
        logicals: list[int] | None,
        show: Callable[[int], None] | None,
    ) -> tuple[int, bool]:
        """One kind (photos, users) from one source: how many rows, and
        whether it went on from an interrupted run."""
        table = "search_photos" if kind == PHOTOS else "search_users"
        async with target.read(PRIMARY) as conn:
            after, finished = await search_index_repo.reindex_position(conn, index, kind)
        resumed = not (restart or finished or after == 0)
        if not resumed:
            async with target.transaction() as conn:
                await search_index_repo.reindex_start(conn, index, kind)
            after = 0
        done = 0
        while True:
            async with source.read(PRIMARY) as conn:
                if kind == PHOTOS:
                    photo_batch = await search_index_repo.photos_after(conn, after, REINDEX_BATCH)
                    ids = [r.id for r in photo_batch]
                else:
                    user_batch = await search_index_repo.users_after(conn, after, REINDEX_BATCH)
                    ids = [r.id for r in user_batch]
            last = ids[-1] if ids else None
            async with target.transaction() as conn:
                if kind == PHOTOS:
                    await search_index_repo.upsert_photos(conn, photo_batch)
                else:
                    await search_index_repo.upsert_users(conn, user_batch)
                await search_index_repo.prune(conn, table, after, last, ids, logicals)
                await search_index_repo.reindex_at(conn, index, kind, last)
            if last is None:
                return done, resumed
            after = last
            done += len(ids)
            if show is not None:
                show(done)

    async def _reindex_tags(self, source: Databases, target: Databases, index: int) -> int:
        """Every tag count of one source (tags are few: no resuming)."""
        after = ""
        done = 0
        while True:
            async with source.read(PRIMARY) as conn:
                batch = await search_index_repo.tags_after(conn, after, REINDEX_BATCH)
            last = batch[-1][0] if batch else None
            async with target.transaction() as conn:
                await search_index_repo.set_tag_counts(conn, index, dict(batch))
                await search_index_repo.prune_tags(
                    conn, index, after, last, [tag for tag, _ in batch]
                )
            if last is None:
                return done
            after = last
            done += len(batch)


@asynccontextmanager
async def _reading(
    source: Databases, target: Databases, conn: Connection
) -> AsyncIterator[Connection]:
    """A connection to read the source on: the index's own transaction when
    the index lives there (what it reads is what it writes beside), else one
    from the source's primary."""
    if source is target:
        yield conn
        return
    async with source.read(PRIMARY) as read:
        yield read

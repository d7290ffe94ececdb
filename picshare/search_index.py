"""The search service's index: `search_photos`, one row per photo with its
caption words and what the privacy rule needs (owner, the owner's privacy,
status), on the database of the photo (README, "Tags and search").

It is fed by domain events, through the `search` consumer: a new photo, a
photo made ready, a deleted photo, an owner's privacy change. Each event
makes the rows it names what the photo and its owner are now (read afresh,
not from the event), so redeliveries and events out of order leave the
index right; each is also recorded in `processed_events` in the transaction
of its write, so a repeat does nothing.

`run.py search reindex` fills the index from the photos already there: in
batches, resuming where an interrupted run stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from picshare.consumers import Consumer, consumer
from picshare.domain_events import (
    PHOTO_DELETED,
    PHOTO_READY,
    PHOTO_UPLOADED,
    USER_UPDATED,
    DomainEvent,
)
from storage import outbox_repo, search_index_repo
from storage.router import PRIMARY
from storage.shards import Shards

SEARCH = "search"
PHOTO_EVENTS = frozenset({PHOTO_UPLOADED, PHOTO_READY, PHOTO_DELETED})
REINDEX_BATCH = 2_000

Progress = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True, slots=True)
class ReindexReport:
    databases: int
    photos: int
    resumed: bool


class SearchIndexer:
    __slots__ = ("_db",)

    def __init__(self, *, db: Shards) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SearchIndexer databases={len(self._db.physical)}>"

    def consumer(self) -> Consumer:
        return consumer(SEARCH, self._handle)

    async def _handle(self, event: DomainEvent) -> None:
        if event.type == USER_UPDATED:
            owner_id = int(event.data["user_id"])
            # The owner's photos are on the owner's database, as is the event.
            async with self._db.of_id(owner_id).transaction() as conn:
                if await outbox_repo.first_time(conn, SEARCH, event.id):
                    await search_index_repo.owner_privacy(conn, owner_id)
            return
        photo_id = int(event.data["photo_id"])
        async with self._db.of_id(photo_id).transaction() as conn:
            if await outbox_repo.first_time(conn, SEARCH, event.id):
                await search_index_repo.sync_photo(conn, photo_id)

    async def reindex(
        self, *, restart: bool = False, progress: Progress | None = None
    ) -> ReindexReport:
        """Index every photo, database by database, in id order: a run that
        was interrupted goes on from its last batch (unless `restart`); a
        finished one starts a new pass. Rows of deleted photos are pruned."""
        photos = 0
        resumed = False
        databases = self._db.physical
        for index, db in enumerate(databases):
            async with db.read(PRIMARY) as conn:
                after, finished = await search_index_repo.reindex_position(conn)
                total = await search_index_repo.photo_count(conn)
            if restart or finished or after == 0:
                async with db.transaction() as conn:
                    await search_index_repo.reindex_start(conn)
                after = 0
            else:
                resumed = True
            show = progress(f"search {index}", total) if progress is not None else None
            done = 0
            while True:
                async with db.transaction() as conn:
                    count, last = await search_index_repo.reindex_batch(conn, after, REINDEX_BATCH)
                if last is None:
                    break
                after = last
                done += count
                photos += count
                if show is not None:
                    show(min(done, total))
            if show is not None and done < total:
                show(total)
        return ReindexReport(databases=len(databases), photos=photos, resumed=resumed)

"""A photo's counts of rows kept in another table group's database (its likes,
its comments: picshare/likes.py, picshare/comments.py).

Where those rows live beside the photo, the count moves in the row's own
transaction. Where they have a database of their own, the row's transaction
there enqueues a count job (the outbox: it commits or rolls back with the
row), and the job moves the count on the photo's shard, with what else the
row causes there (the owner's notification, the domain event), in one
transaction that records the job's key (`processed_events`): a job run twice
counts once. Jobs may run out of order: a removal applied before its
addition would take the count below zero, so it fails and runs again later,
after the addition; the count converges to the rows' number.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from picshare.notify import Notes, Notifier
from storage import outbox_repo, photos_repo
from storage.db import Connection
from storage.records import PhotoRecord
from storage.shards import Shards

# What a count job does on the photo's shard besides the count (a new row's
# notification and event), in the same transaction.
Then = Callable[[Connection, Notes, PhotoRecord], Awaitable[None]]


class CountBehind(Exception):
    """A removal came before its addition: the job runs again later."""


def payload(photo_id: int, delta: int, **more: Any) -> dict[str, Any]:
    """A count job's payload, with the key that makes it count once."""
    return {"key": secrets.randbits(63), "photo_id": photo_id, "delta": delta, **more}


async def apply(
    *, db: Shards, notifier: Notifier, job: str, column: str, data: dict[str, Any], then: Then
) -> bool:
    """Move the photo's `column` by the job's delta, once, and do `then` in
    that transaction. True if the photo is gone (its deletion may have
    forgotten its rows before this one was made: the caller forgets it)."""
    photo_id, delta = int(data["photo_id"]), int(data["delta"])
    async with notifier.transaction(db.photos_of(photo_id)) as (conn, notes):
        if not await outbox_repo.first_time(conn, job, int(data["key"])):
            return False
        photo = await photos_repo.lock_photo(conn, photo_id)
        if photo is None:
            return True
        if await photos_repo.count(conn, photo_id, column, delta) is None:
            raise CountBehind(f"photo {photo_id}: {column} {delta:+d} before its addition")
        await then(conn, notes, photo)
    return False

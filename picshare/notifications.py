"""The notification inbox: rows written by the actions that cause them
(picshare/notify.py), listed and marked read here; and their wire format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picshare.pagination import Page, decode_cursor, page_of
from storage import notifications_repo
from storage.records import NotificationRecord
from storage.router import PRIMARY, read_your_writes
from storage.shards import Shards


@dataclass(frozen=True, slots=True)
class Inbox:
    page: Page[NotificationRecord]
    unread: int


def event_of(n: NotificationRecord) -> dict[str, Any]:
    """A notification as API lists and WebSocket frames carry it (CONTRACT.md)."""
    return {
        "type": "notification",
        "id": str(n.id),
        "kind": n.kind,
        "actor": {"username": n.actor_username},
        "photo_id": None if n.photo_id is None else str(n.photo_id),
        "text": n.text,
        "read": n.read_at is not None,
        "created_at": n.created_at.isoformat().replace("+00:00", "Z"),
    }


class NotificationService:
    """A user's inbox, all on the user's shard (where their notifications live)."""

    __slots__ = ("_db",)

    def __init__(self, *, db: Shards) -> None:
        self._db = db

    async def inbox(self, user_id: int, *, cursor: str | None, limit: int) -> Inbox:
        before = decode_cursor(cursor)
        async with self._db.inbox_of(user_id).read(read_your_writes(user_id)) as conn:
            rows = await notifications_repo.page(conn, user_id, before=before, limit=limit + 1)
            unread = await notifications_repo.unread_count(conn, user_id)
        return Inbox(page_of(rows, limit), unread)

    async def unread(self, user_id: int) -> int:
        async with self._db.inbox_of(user_id).read(read_your_writes(user_id)) as conn:
            return await notifications_repo.unread_count(conn, user_id)

    async def mark_read(self, user_id: int, up_to: int | None) -> int:
        async with self._db.inbox_of(user_id).write() as conn:
            return await notifications_repo.mark_read(conn, user_id, up_to)

    async def since(self, user_id: int, after: int, limit: int) -> list[NotificationRecord]:
        """What a reconnecting socket missed: newer than `after`, oldest first."""
        # A reconnecting socket must not miss what was pushed a moment ago.
        async with self._db.inbox_of(user_id).read(PRIMARY) as conn:
            return await notifications_repo.since(conn, user_id, after, limit)

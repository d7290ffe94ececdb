"""The one place each domain event is written: one method per event type,
each called in the transaction of the change it reports.

    async with db.transaction() as conn:
        ...  # the change
        await outbox.photo_liked(conn, photo, user)
    outbox.committed()  # the relay takes it from here

The row commits with the change or not at all: a rolled-back change
publishes nothing, and a broker that is down holds up no request (the relay
sends the backlog once it is back).
"""

from __future__ import annotations

from typing import Any

from picshare import domain_events as types
from picshare.domain_events import DomainEvent
from picshare.relay import EventRelay
from storage import outbox_repo
from storage.db import Connection
from storage.records import CommentRecord, PhotoRecord, UserRecord


class Outbox:
    __slots__ = ("_relay",)

    def __init__(self, relay: EventRelay) -> None:
        self._relay = relay

    def __repr__(self) -> str:
        return f"<Outbox relay={self._relay!r}>"

    def committed(self) -> None:
        """Call after the commit of a transaction that wrote events."""
        self._relay.wake()

    async def photo_uploaded(
        self, conn: Connection, photo_id: int, owner_id: int, tags: list[str]
    ) -> DomainEvent:
        # The tags: whose counts changed (the search index keeps them).
        return await self._write(
            conn,
            types.PHOTO_UPLOADED,
            {"photo_id": str(photo_id), "owner_id": str(owner_id), "tags": sorted(tags)},
        )

    async def photo_ready(self, conn: Connection, photo_id: int) -> DomainEvent:
        return await self._write(conn, types.PHOTO_READY, {"photo_id": str(photo_id)})

    async def photo_deleted(self, conn: Connection, photo: PhotoRecord) -> DomainEvent:
        return await self._write(
            conn,
            types.PHOTO_DELETED,
            {"photo_id": str(photo.id), "owner_id": str(photo.owner_id), "tags": list(photo.tags)},
        )

    async def photo_liked(
        self, conn: Connection, photo: PhotoRecord, liker: UserRecord
    ) -> DomainEvent:
        """A new like (not a repeat of one that stands)."""
        return await self._write(
            conn,
            types.PHOTO_LIKED,
            {
                "photo_id": str(photo.id),
                "owner_id": str(photo.owner_id),
                "user": {"id": str(liker.id), "username": liker.username},
            },
        )

    async def comment_created(
        self, conn: Connection, photo: PhotoRecord, author: UserRecord, comment: CommentRecord
    ) -> DomainEvent:
        return await self._write(
            conn,
            types.COMMENT_CREATED,
            {
                "comment_id": str(comment.id),
                "photo_id": str(photo.id),
                "owner_id": str(photo.owner_id),
                "user": {"id": str(author.id), "username": author.username},
                "text": comment.text,
            },
        )

    async def user_followed(
        self, conn: Connection, follower_id: int, followee_id: int
    ) -> DomainEvent:
        """A follow now stands (a new follow of a public account, or an approved request)."""
        return await self._write(
            conn,
            types.USER_FOLLOWED,
            {"follower_id": str(follower_id), "followee_id": str(followee_id)},
        )

    async def user_created(self, conn: Connection, user: UserRecord) -> DomainEvent:
        """A new account (`UserService.signup`)."""
        return await self._write(
            conn, types.USER_CREATED, {"user_id": str(user.id), "username": user.username}
        )

    async def user_updated(self, conn: Connection, user: UserRecord) -> DomainEvent:
        """The account went private or public, or its display name changed
        (the one place that changes them: `UserService.update_profile`)."""
        return await self._write(
            conn,
            types.USER_UPDATED,
            {
                "user_id": str(user.id),
                "private": user.private,
                "display_name": user.display_name,
            },
        )

    async def payment_tip(
        self,
        conn: Connection,
        *,
        transfer_id: int,
        from_user: int,
        to_user: int,
        amount_cents: int,
        currency: str,
        photo_id: int | None,
    ) -> DomainEvent:
        return await self._write(
            conn,
            types.PAYMENT_TIP,
            {
                "transfer_id": str(transfer_id),
                "from_user_id": str(from_user),
                "to_user_id": str(to_user),
                "amount_cents": amount_cents,
                "currency": currency,
                "photo_id": None if photo_id is None else str(photo_id),
            },
        )

    async def notifications_changed(
        self, conn: Connection, ops: list[dict[str, Any]]
    ) -> DomainEvent:
        """Notifications for the notifications service to write (picshare/notify.py)."""
        return await self._write(conn, types.NOTIFICATIONS_CHANGED, {"ops": ops})

    async def _write(self, conn: Connection, event_type: str, data: dict[str, Any]) -> DomainEvent:
        row = await outbox_repo.add(conn, event_type, data)
        event = DomainEvent(row.id, row.type, row.data, row.created_at)
        await self._relay.written(conn, event)
        return event

"""Notifications: one function per event that causes (or withdraws) one, each
writing its rows in the transaction of the action that caused it; what was
written is pushed live once that transaction commits.

    async with notify.transaction(shards.of_id(photo_id), bus) as (conn, notes):
        ...  # the action's own writes on `conn`
        await notes.liked(photo, user)
    # committed: the like's notification is on the bus now

Publishing after the commit means a listener never sees a notification that
then rolls back; a process that dies in between loses only the live push
(the row is there, and `?since=` replays it, picshare/events.py).

A notification lives on its recipient's shard, so a transaction writes those
of one shard only; an event whose recipients live on several shards (a new
photo's followers) writes one transaction per shard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from picshare.events import EventBus
from picshare.notifications import event_of
from storage import notifications_repo
from storage.db import Connection
from storage.records import (
    CommentRecord,
    NotificationKind,
    NotificationRecord,
    PhotoRecord,
    UserRecord,
)
from storage.router import Databases, Isolation

SNIPPET = 60  # characters of a comment quoted in its notification


class Notes:
    """The notifications of one transaction: the events, and what they wrote."""

    __slots__ = ("_conn", "written")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.written: list[NotificationRecord] = []

    def __repr__(self) -> str:
        return f"<Notes written={len(self.written)}>"

    async def liked(self, photo: PhotoRecord, liker: UserRecord) -> None:
        """A new like (not a repeat after an unlike: the repository absorbs those)."""
        self._keep(
            await notifications_repo.add(
                self._conn,
                user_id=photo.owner_id,
                kind=NotificationKind.LIKE,
                actor_id=liker.id,
                actor_username=liker.username,
                photo_id=photo.id,
                text=f"{liker.username} liked your photo",
            )
        )

    async def commented(
        self, photo: PhotoRecord, author: UserRecord, comment: CommentRecord
    ) -> None:
        text = comment.text
        snippet = text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
        self._keep(
            await notifications_repo.add(
                self._conn,
                user_id=photo.owner_id,
                kind=NotificationKind.COMMENT,
                actor_id=author.id,
                actor_username=author.username,
                photo_id=photo.id,
                comment_id=comment.id,
                text=f"{author.username} commented: {snippet}",
            )
        )

    async def followed(self, followee: UserRecord, follower: UserRecord) -> None:
        """A new follow of a public account."""
        self._keep(
            await notifications_repo.add(
                self._conn,
                user_id=followee.id,
                kind=NotificationKind.FOLLOW,
                actor_id=follower.id,
                actor_username=follower.username,
                text=f"{follower.username} started following you",
            )
        )

    async def follow_requested(self, target: UserRecord, requester: UserRecord) -> None:
        """A new request to follow a private account."""
        self._keep(
            await notifications_repo.add(
                self._conn,
                user_id=target.id,
                kind=NotificationKind.FOLLOW_REQUEST,
                actor_id=requester.id,
                actor_username=requester.username,
                text=f"{requester.username} asked to follow you",
            )
        )

    async def follow_request_withdrawn(self, target: UserRecord, requester: UserRecord) -> None:
        await self._drop_request(target, requester)

    async def follow_request_declined(self, target: UserRecord, requester: UserRecord) -> None:
        await self._drop_request(target, requester)

    async def follow_request_approved(self, target: UserRecord, requester: UserRecord) -> None:
        """The request's notification becomes a "follows you" one. Not pushed
        live: the one it would go to is the one who just approved."""
        await self._drop_request(target, requester)
        await notifications_repo.add(
            self._conn,
            user_id=target.id,
            kind=NotificationKind.FOLLOW,
            actor_id=requester.id,
            actor_username=requester.username,
            text=f"{requester.username} started following you",
        )

    async def tipped(
        self,
        *,
        transfer_id: int,
        receiver_id: int,
        tipper_id: int,
        tipper: str,
        photo_id: int | None,
        text: str,
    ) -> None:
        """A tip's receiver, once however often it is told (a retried job)."""
        self._keep(
            await notifications_repo.add_tip(
                self._conn,
                transfer_id=transfer_id,
                user_id=receiver_id,
                actor_id=tipper_id,
                actor_username=tipper,
                photo_id=photo_id,
                text=text,
            )
        )

    async def photo_ready(self, photo: PhotoRecord, follower_ids: list[int]) -> None:
        """A photo became ready: these followers of its owner (all with their
        rows in this transaction's database), in one statement. A repeat (a
        retried job) finds the rows there and sends nothing twice."""
        self.written.extend(
            await notifications_repo.add_photo_ready(
                self._conn,
                user_ids=follower_ids,
                actor_id=photo.owner_id,
                actor_username=photo.owner_username,
                photo_id=photo.id,
                text=f"{photo.owner_username} posted a photo",
            )
        )

    async def _drop_request(self, target: UserRecord, requester: UserRecord) -> None:
        """A follow request is gone (withdrawn, declined, approved): so is its notification."""
        await notifications_repo.remove(
            self._conn,
            user_id=target.id,
            actor_id=requester.id,
            kind=NotificationKind.FOLLOW_REQUEST,
        )

    def _keep(self, record: NotificationRecord | None) -> None:
        # None: nobody is told of their own action, and repeats are absorbed.
        if record is not None:
            self.written.append(record)


@asynccontextmanager
async def transaction(
    db: Databases,
    bus: EventBus,
    *,
    isolation: Isolation = "read_committed",
    readonly: bool = False,
) -> AsyncIterator[tuple[Connection, Notes]]:
    """A transaction on `db` (one shard) whose notifications go live once it
    commits. Every notification it writes must be to a user of that shard:
    the caller picks the shard its action and the notification share (a like:
    the photo's, where its owner lives)."""
    async with db.transaction(isolation=isolation, readonly=readonly) as conn:
        notes = Notes(conn)
        yield conn, notes
    for record in notes.written:
        await bus.publish(record.user_id, event_of(record))

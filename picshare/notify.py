"""Notifications: one function per event that causes (or withdraws) one, each
called in the transaction of the action that caused it; what was written is
pushed live once it is committed.

    async with notifier.transaction(shards.of_id(photo_id)) as (conn, notes):
        ...  # the action's own writes on `conn`
        await notes.liked(photo, user)
    # committed: the like's notification is on the bus now

Who writes them, and where, is decided once, in `Notifier` (`Placement`):
- in the action's transaction (the default): a notification lives on its
  recipient's shard, the one its action's transaction writes (a like: the
  photo's, where its owner lives), so it is written in that transaction;
- by a job, when they have a database of their own
  (`PICSHARE_DATABASE_GROUP_NOTIFICATIONS_URL`, the NOTIFICATIONS table
  group): the action's transaction records what to write as a
  `notify.apply` job (it commits or rolls back with the action), and the job
  writes it in the notifications database, once however often it runs, and
  pushes it live then. The lag is the job's pickup, a few milliseconds;
- by the notifications service, when the site runs as services with a
  broker (`events.amqp_url`, `serve --service`): the action's transaction
  writes what to write as a `notifications.changed` event in its outbox
  (picshare/outbox.py), and the `notifications` consumer, which only that
  service runs, writes it where notifications live, once per database
  however often it is delivered (`processed_events`), and pushes it live.
  The lag is the relay's and the broker's: milliseconds while all is up;
  while the notifications service is down the action still succeeds and
  its notifications wait in the queue until the service is back.

Publishing after the commit means a listener never sees a notification that
then rolls back; a process that dies in between loses only the live push
(the row is there, and `?since=` replays it, picshare/events.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from picshare.consumers import Consumer, Handler, consumer
from picshare.domain_events import NOTIFICATIONS_CHANGED, PHOTO_READY, DomainEvent
from picshare.events import EventBus
from picshare.jobs import JobKind, JobRunner
from picshare.notifications import event_of
from picshare.outbox import Outbox
from storage import notifications_repo, outbox_repo
from storage.db import Connection
from storage.records import (
    CommentRecord,
    NotificationKind,
    NotificationRecord,
    PhotoRecord,
    UserRecord,
)
from storage.router import Databases, Isolation
from storage.shards import Shards

SNIPPET = 60  # characters of a comment quoted in its notification
APPLY_JOB = "notify.apply"
CONSUMER = "notifications"

# One change to notifications, as data: written at once, or carried by a
# job to the notifications' own database. `apply` is the one reader.
Op = dict[str, Any]


async def apply(conn: Connection, op: Op, *, late: bool = False) -> list[NotificationRecord]:
    """Make one change on `conn`; the notifications it wrote (to push live).
    `late`: after the action's commit (a job or an event), when the photo or
    comment it is about may have been deleted meanwhile: then it writes
    nothing, in a savepoint, rather than the foreign key failing the whole
    batch again at every retry (an add, a tip's or a new photo's alike)."""
    if not late:
        return await _apply(conn, op)
    try:
        async with conn.transaction():  # a savepoint: the batch goes on
            return await _apply(conn, op)
    except asyncpg.ForeignKeyViolationError:
        return []


async def _apply(conn: Connection, op: Op) -> list[NotificationRecord]:
    what = op["op"]
    if what == "add":
        record = await notifications_repo.add(
            conn,
            user_id=op["user_id"],
            kind=NotificationKind(op["kind"]),
            actor_id=op["actor_id"],
            actor_username=op["actor_username"],
            photo_id=op.get("photo_id"),
            comment_id=op.get("comment_id"),
            text=op["text"],
        )
        # Not pushed when the one it would go to did it (an approval).
        return [] if record is None or not op.get("push", True) else [record]
    if what == "remove":
        await notifications_repo.remove(
            conn,
            user_id=op["user_id"],
            actor_id=op["actor_id"],
            kind=NotificationKind(op["kind"]),
        )
        return []
    if what == "tip":
        tip = await notifications_repo.add_tip(
            conn,
            transfer_id=op["transfer_id"],
            user_id=op["user_id"],
            actor_id=op["actor_id"],
            actor_username=op["actor_username"],
            photo_id=op.get("photo_id"),
            text=op["text"],
        )
        return [] if tip is None else [tip]
    if what == "photo_ready":
        return await notifications_repo.add_photo_ready(
            conn,
            user_ids=op["user_ids"],
            actor_id=op["actor_id"],
            actor_username=op["actor_username"],
            photo_id=op["photo_id"],
            text=op["text"],
        )
    if what == "forget_photo":
        await notifications_repo.forget_photo(conn, op["photo_id"])
        return []
    if what == "forget_comment":
        await notifications_repo.forget_comment(conn, op["comment_id"])
        return []
    raise ValueError(f"no notification change {what!r}")


class Notes:
    """The notifications of one transaction: the events, and what they wrote
    (`written`, pushed after the commit). `deferred` is None when they are
    written on the transaction's own connection, else the changes its
    `notify.apply` job will make."""

    __slots__ = ("_conn", "deferred", "written")

    def __init__(self, conn: Connection, *, defer: bool = False) -> None:
        self._conn = conn
        self.written: list[NotificationRecord] = []
        self.deferred: list[Op] | None = [] if defer else None

    def __repr__(self) -> str:
        return f"<Notes written={len(self.written)}>"

    async def liked(self, photo: PhotoRecord, liker: UserRecord) -> None:
        """A new like (not a repeat after an unlike: the repository absorbs those)."""
        await self._do(
            _add(
                NotificationKind.LIKE,
                photo.owner_id,
                liker,
                f"{liker.username} liked your photo",
                photo_id=photo.id,
            )
        )

    async def commented(
        self, photo: PhotoRecord, author: UserRecord, comment: CommentRecord
    ) -> None:
        text = comment.text
        snippet = text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
        await self._do(
            _add(
                NotificationKind.COMMENT,
                photo.owner_id,
                author,
                f"{author.username} commented: {snippet}",
                photo_id=photo.id,
                comment_id=comment.id,
            )
        )

    async def comment_deleted(self, comment_id: int) -> None:
        """Its notification goes with it (a key's cascade does it where the
        two share a database; this says it where they do not)."""
        await self._do({"op": "forget_comment", "comment_id": comment_id})

    async def photo_deleted(self, photo_id: int) -> None:
        """Every notification about it, in this transaction's reach (the
        notifications' own database, or this shard: the others by a job)."""
        await self._do({"op": "forget_photo", "photo_id": photo_id})

    async def followed(self, followee: UserRecord, follower: UserRecord) -> None:
        """A new follow of a public account."""
        await self._do(
            _add(
                NotificationKind.FOLLOW,
                followee.id,
                follower,
                f"{follower.username} started following you",
            )
        )

    async def follow_requested(self, target: UserRecord, requester: UserRecord) -> None:
        """A new request to follow a private account."""
        await self._do(
            _add(
                NotificationKind.FOLLOW_REQUEST,
                target.id,
                requester,
                f"{requester.username} asked to follow you",
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
        await self._do(
            _add(
                NotificationKind.FOLLOW,
                target.id,
                requester,
                f"{requester.username} started following you",
                push=False,
            )
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
        await self._do(
            {
                "op": "tip",
                "transfer_id": transfer_id,
                "user_id": receiver_id,
                "actor_id": tipper_id,
                "actor_username": tipper,
                "photo_id": photo_id,
                "text": text,
            }
        )

    async def photo_ready(self, photo: PhotoRecord, follower_ids: list[int]) -> None:
        """A photo became ready: these followers of its owner (all with their
        notifications in this transaction's database), in one statement. A
        repeat (a retried job) finds the rows there and sends nothing twice."""
        await self._do(
            {
                "op": "photo_ready",
                "user_ids": follower_ids,
                "actor_id": photo.owner_id,
                "actor_username": photo.owner_username,
                "photo_id": photo.id,
                "text": f"{photo.owner_username} posted a photo",
            }
        )

    async def _drop_request(self, target: UserRecord, requester: UserRecord) -> None:
        """A follow request is gone (withdrawn, declined, approved): so is its notification."""
        await self._do(
            {
                "op": "remove",
                "user_id": target.id,
                "actor_id": requester.id,
                "kind": NotificationKind.FOLLOW_REQUEST.value,
            }
        )

    async def _do(self, op: Op) -> None:
        if self.deferred is not None:
            self.deferred.append(op)
        else:
            self.written.extend(await apply(self._conn, op))


def _add(
    kind: NotificationKind,
    user_id: int,
    actor: UserRecord,
    text: str,
    *,
    photo_id: int | None = None,
    comment_id: int | None = None,
    push: bool = True,
) -> Op:
    return {
        "op": "add",
        "kind": kind.value,
        "user_id": user_id,
        "actor_id": actor.id,
        "actor_username": actor.username,
        "text": text,
        "photo_id": photo_id,
        "comment_id": comment_id,
        "push": push,
    }


class Notifier:
    """Opens the transactions that notify, and pushes what they wrote."""

    __slots__ = ("_bus", "_db", "_events", "_jobs")

    def __init__(
        self, *, db: Shards, bus: EventBus, jobs: JobRunner, events: Outbox | None = None
    ) -> None:
        """`events`: the notifications service writes them (a site of
        services with a broker): what to write goes out through this outbox."""
        self._db = db
        self._bus = bus
        self._jobs = jobs
        self._events = events

    def __repr__(self) -> str:
        return f"<Notifier placement={self.placement}>"

    @property
    def placement(self) -> str:
        """Who writes the notifications: "transaction", "job" or "events"."""
        if self._events is not None:
            return "events"
        return "transaction" if self._db.inbox is None else "job"

    def job_kinds(self) -> dict[str, JobKind]:
        return {APPLY_JOB: JobKind(self._apply_job)}

    def consumer(self, photo_ready: Handler) -> Consumer:
        """The `notifications` consumer: what actions asked to write, and a
        ready photo's followers (`photo_ready`, the photo service's)."""

        async def handle(event: DomainEvent) -> None:
            if event.type == NOTIFICATIONS_CHANGED:
                await self._apply_event(event)
            elif event.type == PHOTO_READY:
                await photo_ready(event)

        return consumer(CONSUMER, handle)

    @asynccontextmanager
    async def transaction(
        self,
        db: Databases,
        *,
        isolation: Isolation = "read_committed",
        readonly: bool = False,
        here: bool = False,
    ) -> AsyncIterator[tuple[Connection, Notes]]:
        """A transaction on `db` whose notifications go live once they are
        committed. With notifications beside the rest, every notification it
        writes must be to a user of `db`: the caller picks the database its
        action and the notification share (a like: the photo's). `here`: the
        caller is the notifications' own writer (the `notifications`
        consumer) and `db` is where they live: written on it, whatever the
        placement."""
        events = None if here else self._events
        inbox = self._db.inbox
        defer = events is not None or (inbox is not None and db is not inbox)
        async with db.transaction(isolation=isolation, readonly=readonly) as conn:
            notes = Notes(conn, defer=defer)
            yield conn, notes
            if notes.deferred and events is not None:
                # The event's id is the key the consumer records as done.
                await events.notifications_changed(conn, notes.deferred)
            elif notes.deferred:
                # A key the job records as done, in the notifications'
                # database: a job run twice (its lease lapsed) writes once.
                payload = {"key": secrets.randbits(63), "ops": notes.deferred}
                await self._jobs.enqueue(conn, APPLY_JOB, payload)
        if notes.deferred and events is not None:
            events.committed()
        elif notes.deferred:
            self._jobs.wake()
        await self._publish(notes.written)

    async def _apply_event(self, event: DomainEvent) -> None:
        """An action's notifications, each in the database it lives in (one
        transaction per database, in the order given). Each database records
        the event as done in that transaction: a redelivery (a retry after
        another database failed, a crash before the ack) writes nothing twice."""
        by_home: dict[int, tuple[Databases, list[Op]]] = {}
        for op in event.data["ops"]:
            home = self._home(op)
            by_home.setdefault(id(home), (home, []))[1].append(op)
        for home, ops in by_home.values():
            written: list[NotificationRecord] = []
            async with home.transaction() as conn:
                if await outbox_repo.first_time(conn, CONSUMER, event.id):
                    for op in ops:
                        written.extend(await apply(conn, op, late=True))
            await self._publish(written)

    def _home(self, op: Op) -> Databases:
        """The database a change is made in: the notifications' own, else the
        shard of whoever (or whatever) the notifications are of."""
        inbox = self._db.inbox
        if inbox is not None:
            return inbox
        what = op["op"]
        if what == "forget_photo":
            return self._db.of_id(int(op["photo_id"]))
        if what == "forget_comment":
            return self._db.of_id(int(op["comment_id"]))
        if what == "photo_ready":
            return self._db.of_user(int(op["user_ids"][0]))
        return self._db.of_user(int(op["user_id"]))

    async def _apply_job(self, payload: dict[str, Any]) -> None:
        inbox = self._db.inbox
        if inbox is None:
            # Enqueued while the notifications had a database of their own,
            # run after they moved back: the rows would not be read there.
            return
        written: list[NotificationRecord] = []
        async with inbox.transaction() as conn:
            if await outbox_repo.first_time(conn, APPLY_JOB, int(payload["key"])):
                for op in payload["ops"]:
                    written.extend(await apply(conn, op, late=True))
        await self._publish(written)

    async def _publish(self, written: list[NotificationRecord]) -> None:
        for record in written:
            await self._bus.publish(record.user_id, event_of(record))

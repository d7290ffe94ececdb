"""The RabbitMQ relay (aio-pika), chosen when `events.amqp_url` is set.

Publishing: a loop takes each database's unsent outbox rows (`FOR UPDATE
SKIP LOCKED`: relays in several processes share the work), publishes each
to a durable topic exchange, routing key = event type, persistent, and
marks the rows sent in the same transaction only once the broker confirmed
them (publisher confirms). A broker that is down rolls that transaction
back: the rows wait, requests are not held up, and the loop reconnects.
A crash between the confirm and the commit sends an event twice: consumers
are idempotent by event id.

Consuming: every consumer has its durable queue `<exchange>.<name>` bound
to its event types, and two beside it:
- `<name>.retry`: a failed delivery is re-published there with a per-message
  TTL (the backoff); on expiry RabbitMQ dead-letters it back to the main
  queue. One retry queue per consumer means a message waits behind a head
  with a longer TTL: retries are late, never early, and never lost.
- `<name>.dead`: where it goes once `events.max_attempts` are spent.
A message is acknowledged only after the consumer's work committed, or after
its re-publish (retry or dead) was confirmed.

Every process declares every consumer's queues, bound to their types, before
it publishes, so no event is dropped for want of a queue (or a binding) while
no worker of that consumer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from picshare.config import EventSettings
from picshare.consumers import Consumer
from picshare.domain_events import DomainEvent
from picshare.relay import DeadEvent
from storage import outbox_repo
from storage.db import Connection
from storage.router import Databases, DatabaseUnavailable
from storage.shards import Shards

log = logging.getLogger(__name__)

ATTEMPTS = "x-picshare-attempts"
ERROR = "x-picshare-error"
BATCH = 100  # outbox rows per transaction of the publishing loop


class BrokerUnavailable(Exception):
    """The broker cannot be reached (for the commands that need it now)."""


class AmqpRelay:
    __slots__ = (
        "_backlog",
        "_channel",
        "_connection",
        "_consumers",
        "_db",
        "_exchange",
        "_names",
        "_on_backlog",
        "_run_here",
        "_settings",
        "_subscribed",
        "_task",
        "_wake",
    )

    def __init__(
        self,
        *,
        db: Shards,
        settings: EventSettings,
        names: Sequence[str],
        run_here: Sequence[str],
        on_backlog: Callable[[int], None] | None = None,
        subscribed: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """`names`: every consumer of the site (their queues are declared);
        `run_here`: those this process consumes; `subscribed`: the types of
        the site's consumers (picshare/consumers.py), bound also by a process
        that runs none of them, so no event waits for its consumer's first start."""
        self._db = db
        self._settings = settings
        self._subscribed = dict(subscribed or {})
        self._names = list(names)
        self._run_here = set(run_here)
        self._consumers: dict[str, Consumer] = {}
        self._on_backlog = on_backlog
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._backlog = 0

    def __repr__(self) -> str:
        state = "connected" if self._exchange is not None else "disconnected"
        return f"<AmqpRelay {state} consumers={sorted(self._run_here)} backlog={self._backlog}>"

    @property
    def connected(self) -> bool:
        return self._exchange is not None

    @property
    def backlog(self) -> int:
        """Unsent outbox rows at the last scan."""
        return self._backlog

    def state(self) -> str:
        if self._exchange is not None:
            return "ok"
        return f"failing: broker unreachable, {self._backlog} events wait in the outbox"

    def register(self, consumers: list[Consumer]) -> None:
        for consumer in consumers:
            self._consumers[consumer.name] = consumer
            if consumer.name not in self._names:
                self._names.append(consumer.name)

    async def written(self, conn: Connection, event: DomainEvent) -> None:
        """Nothing more in the transaction: the publishing loop takes the row."""

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="amqp-relay")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._disconnect()

    # -- names --------------------------------------------------------------

    def queue(self, name: str) -> str:
        return f"{self._settings.exchange}.{name}"

    def _retry_queue(self, name: str) -> str:
        return f"{self.queue(name)}.retry"

    def _dead_queue(self, name: str) -> str:
        return f"{self.queue(name)}.dead"

    # -- the loop -------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._connect()
                delay = 0.5
                await self._publish_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event relay: the broker is away (%r); retrying in %.1fs", exc, delay)
                await self._disconnect()
                await self._count_backlog()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _connect(self) -> None:
        timeout = self._settings.timeout
        connection = await aio_pika.connect_robust(self._settings.amqp_url, timeout=timeout)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await self._declare(channel)
            for name in sorted(self._run_here & set(self._consumers)):
                consuming = await connection.channel()
                await consuming.set_qos(prefetch_count=self._settings.prefetch)
                queue = await consuming.get_queue(self.queue(name))
                await queue.consume(self._on_message(self._consumers[name], channel))
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange
        log.info("event relay: connected to the broker; consuming %s", sorted(self._run_here))

    async def _declare(self, channel: AbstractChannel) -> AbstractExchange:
        """The exchange and every consumer's three queues (declaring is idempotent)."""
        exchange = await channel.declare_exchange(
            self._settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for name in self._names:
            queue = await channel.declare_queue(self.queue(name), durable=True)
            consumer = self._consumers.get(name)
            types = consumer.types if consumer is not None else self._subscribed.get(name, ())
            for event_type in sorted(types):
                await queue.bind(exchange, routing_key=event_type)
            await channel.declare_queue(
                self._retry_queue(name),
                durable=True,
                arguments={
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.queue(name),
                },
            )
            await channel.declare_queue(self._dead_queue(name), durable=True)
        return exchange

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._settings.timeout)

    async def _publish_loop(self) -> None:
        while True:
            self._wake.clear()
            sent = 0
            for db in self._db.everything():
                try:
                    sent += await self._publish_from(db)
                except DatabaseUnavailable as exc:
                    log.warning("event relay: %s; its events wait", exc)
            await self._count_backlog()
            if sent:
                continue  # there may be more
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.relay_interval)

    async def _publish_from(self, db: Databases) -> int:
        exchange = self._exchange
        assert exchange is not None
        async with db.transaction() as conn:
            rows = await outbox_repo.claim_unsent(conn, limit=BATCH)
            # Each publish returns once the broker confirmed it, and raises
            # (rolling the claim back: the rows stay unsent) if it did not.
            # All of the batch at once: their confirms come back pipelined.
            await asyncio.gather(
                *(
                    exchange.publish(
                        _message(DomainEvent(row.id, row.type, row.data, row.created_at)),
                        routing_key=row.type,
                        timeout=self._settings.timeout,
                    )
                    for row in rows
                )
            )
            if rows:
                await outbox_repo.mark_sent(conn, [row.id for row in rows])
        return len(rows)

    async def _count_backlog(self) -> None:
        total = 0
        for db in self._db.everything():
            try:
                async with db.transaction(readonly=True) as conn:
                    total += await outbox_repo.backlog(conn)
            except Exception as exc:
                log.debug("event relay: backlog of %s unknown: %r", db, exc)
        self._backlog = total
        if self._on_backlog is not None:
            self._on_backlog(total)

    # -- consuming --------------------------------------------------------------

    def _on_message(
        self, consumer: Consumer, publisher: AbstractChannel
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            attempts = int(str((message.headers or {}).get(ATTEMPTS, 0))) + 1
            try:
                event = DomainEvent.from_bytes(message.body)
            except Exception as exc:
                await self._dead_letter(publisher, consumer.name, message, attempts, repr(exc))
                await message.ack()
                return
            try:
                await consumer.handle(event)
            except asyncio.CancelledError:
                raise  # shutdown: unacknowledged, the broker delivers it again
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                if attempts >= self._settings.max_attempts:
                    log.error("event %s: %s failed for good: %s", event.id, consumer.name, error)
                    await self._dead_letter(publisher, consumer.name, message, attempts, error)
                    await message.ack()
                    if consumer.on_dead is not None:
                        try:
                            await consumer.on_dead(event, error)
                        except Exception:
                            log.exception("event %s: %s: on_dead failed", event.id, consumer.name)
                    return
                delay = self.backoff(attempts)
                log.warning(
                    "event %s: %s failed, retry in %.1fs: %s", event.id, consumer.name, delay, error
                )
                await publisher.default_exchange.publish(
                    _copy(message, attempts, error, expiration=delay),
                    routing_key=self._retry_queue(consumer.name),
                    timeout=self._settings.timeout,
                )
            await message.ack()

        return on_message

    def backoff(self, attempts: int) -> float:
        return float(
            min(self._settings.retry_max, self._settings.retry_base * 2.0 ** (attempts - 1))
        )

    async def _dead_letter(
        self,
        publisher: AbstractChannel,
        name: str,
        message: AbstractIncomingMessage,
        attempts: int,
        error: str,
    ) -> None:
        await publisher.default_exchange.publish(
            _copy(message, attempts, error),
            routing_key=self._dead_queue(name),
            timeout=self._settings.timeout,
        )

    # -- dead letters (run.py events dead|retry) ---------------------------------

    @contextlib.asynccontextmanager
    async def _admin_channel(self) -> AsyncIterator[AbstractChannel]:
        """A connection of its own: the commands run without `start`. Closing
        the channel gives back every message it took and did not ack."""
        try:
            connection = await aio_pika.connect(
                self._settings.amqp_url, timeout=self._settings.timeout
            )
        except Exception as exc:
            raise BrokerUnavailable(f"the broker at events.amqp_url is away: {exc!r}") from exc
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await self._declare(channel)
            yield channel

    async def _take_all(self, queue: AbstractQueue) -> list[AbstractIncomingMessage]:
        taken: list[AbstractIncomingMessage] = []
        while (message := await queue.get(fail=False, timeout=self._settings.timeout)) is not None:
            taken.append(message)
        return taken

    async def dead(self) -> list[DeadEvent]:
        found: list[DeadEvent] = []
        async with self._admin_channel() as channel:
            for name in self._names:
                queue = await channel.get_queue(self._dead_queue(name))
                for message in await self._take_all(queue):
                    found.append(_dead_event(name, message))
        return sorted(found, key=lambda dead: dead.event.id)

    async def retry(self, event_id: int | None) -> int:
        replayed = 0
        async with self._admin_channel() as channel:
            for name in self._names:
                queue = await channel.get_queue(self._dead_queue(name))
                for message in await self._take_all(queue):
                    if event_id is not None and message.message_id != str(event_id):
                        continue  # given back when the channel closes
                    await channel.default_exchange.publish(
                        _copy(message, 0, None),
                        routing_key=self.queue(name),
                        timeout=self._settings.timeout,
                    )
                    await message.ack()
                    replayed += 1
        return replayed


def _message(event: DomainEvent) -> aio_pika.Message:
    return aio_pika.Message(
        event.to_bytes(),
        message_id=str(event.id),
        type=event.type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={ATTEMPTS: 0},
    )


def _copy(
    message: AbstractIncomingMessage,
    attempts: int,
    error: str | None,
    *,
    expiration: float | None = None,
) -> aio_pika.Message:
    headers = dict(message.headers or {})
    headers[ATTEMPTS] = attempts
    if error is None:
        headers.pop(ERROR, None)
    else:
        headers[ERROR] = error
    return aio_pika.Message(
        message.body,
        message_id=message.message_id,
        type=message.type,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers,
        expiration=expiration,
    )


def _dead_event(name: str, message: AbstractIncomingMessage) -> DeadEvent:
    headers = message.headers or {}
    try:
        event = DomainEvent.from_bytes(message.body)
    except Exception:
        event = DomainEvent(int(message.message_id or 0), message.type or "?", {}, _epoch())
    return DeadEvent(
        consumer=name,
        event=event,
        attempts=int(str(headers.get(ATTEMPTS, 0))),
        error=str(headers.get(ERROR, "")),
    )


def _epoch() -> datetime:
    return datetime.fromtimestamp(0, UTC)

"""How events leave the outbox for their consumers: the relay Protocol.

One module per implementation, chosen once in the factory (picshare/app.py):
picshare/relay_inprocess.py (the durable jobs engine, the default) and
picshare/relay_amqp.py (RabbitMQ through aio-pika, with `events.amqp_url`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from picshare.consumers import Consumer
from picshare.domain_events import DomainEvent
from storage.db import Connection


@dataclass(frozen=True, slots=True)
class DeadEvent:
    """An event a consumer gave up on: its retries are spent."""

    consumer: str
    event: DomainEvent
    attempts: int
    error: str


class EventRelay(Protocol):
    def register(self, consumers: list[Consumer]) -> None:
        """The consumers this relay delivers to (before `start`)."""

    async def written(self, conn: Connection, event: DomainEvent) -> None:
        """An event was just written on `conn`, in the change's transaction."""

    def state(self) -> str:
        """For /readyz: "ok", or "failing: <why>" (events then wait in the outbox)."""

    def wake(self) -> None:
        """A transaction that wrote events committed: relay them now, not at the next poll."""

    async def start(self) -> None:
        """Begin relaying (and consuming, for the consumers this process runs)."""

    async def close(self) -> None:
        """Stop; what is not relayed yet stays in the outbox."""

    async def dead(self) -> list[DeadEvent]:
        """The dead-lettered events, every consumer's."""

    async def retry(self, event_id: int | None) -> int:
        """Replay one dead event (None: all of them); how many were replayed."""

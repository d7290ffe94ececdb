"""Consumers of domain events, registered by name.

A consumer is idempotent by event id: it records the event in
`processed_events` (its own database) in the transaction of its work, or its
work is a state change that a repeat finds done (a photo already rendered).
It is run by a relay: the in-process one runs it as a durable job, the AMQP
one from its own durable queue, acknowledging only after `handle` returned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from picshare.domain_events import (
    EVENT_TYPES,
    NOTIFICATIONS_CHANGED,
    PHOTO_DELETED,
    PHOTO_READY,
    PHOTO_UPLOADED,
    USER_CREATED,
    USER_UPDATED,
    DomainEvent,
)
from storage import outbox_repo
from storage.shards import Shards

Handler = Callable[[DomainEvent], Awaitable[None]]
DeadHandler = Callable[[DomainEvent, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Consumer:
    name: str
    types: frozenset[str]
    handle: Handler
    # Called once when the event is dead-lettered, to leave state consistent
    # (a photo that cannot be rendered is marked failed).
    on_dead: DeadHandler | None = None


class UnknownConsumer(ValueError):
    """A consumer name that no consumer has (`--consumers`, `events.consumers`)."""


# The event types each consumer of the site takes: its queue's bindings, or
# the jobs an event gets without a broker. Every process knows them all,
# also those of consumers it does not run (another service does).
SUBSCRIPTIONS: dict[str, frozenset[str]] = {
    "renditions": frozenset({PHOTO_UPLOADED}),
    # A ready photo's followers, and the notifications of likes, comments,
    # follows and tips when they are the notifications service's to write.
    "notifications": frozenset({PHOTO_READY, NOTIFICATIONS_CHANGED}),
    "counters": EVENT_TYPES,
    "moderation": frozenset({PHOTO_UPLOADED}),
    "webhooks": EVENT_TYPES,
    "search": frozenset({PHOTO_UPLOADED, PHOTO_READY, PHOTO_DELETED, USER_CREATED, USER_UPDATED}),
}


def consumer(name: str, handle: Handler, on_dead: DeadHandler | None = None) -> Consumer:
    """One of the site's consumers, taking the types it subscribes to."""
    return Consumer(name, SUBSCRIPTIONS[name], handle, on_dead)


def subscriptions(*, moderated: bool) -> dict[str, frozenset[str]]:
    """The site's consumers and their types with these settings: without a
    moderation service nothing is held for one (no queue bound, no job)."""
    return {n: t for n, t in SUBSCRIPTIONS.items() if moderated or n != "moderation"}


def counters(db: Shards) -> Consumer:
    """How many events of each type happened (`event_counts`, in the catalog):
    not idempotent by nature, so the processed row goes in its transaction."""

    async def handle(event: DomainEvent) -> None:
        async with db.catalog.transaction() as conn:
            if await outbox_repo.first_time(conn, "counters", event.id):
                await outbox_repo.count_event(conn, event.type)

    return consumer("counters", handle)


# Every consumer of the site, by name: a process that runs none of them still
# declares their queues before publishing (picshare/relay_amqp.py), and the
# commands (`run.py events`, `run.py worker --consumers`) check names here.
CONSUMER_NAMES: tuple[str, ...] = tuple(SUBSCRIPTIONS)


def names_chosen(setting: str) -> list[str]:
    """The consumer names `events.consumers` means: all, none, or a comma list."""
    wanted = setting.strip().lower()
    if wanted in ("", "all"):
        return list(CONSUMER_NAMES)
    if wanted == "none":
        return []
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONSUMER_NAMES]
    if unknown:
        raise UnknownConsumer(
            f"events.consumers: no consumer {', '.join(unknown)}; "
            f"the consumers are {', '.join(CONSUMER_NAMES)}"
        )
    return names

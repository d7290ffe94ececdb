"""Users' webhooks (Standard Webhooks): endpoints, and the delivery of each
domain event to the endpoints of the user it belongs to.

- Registration checks the URL (http(s), and the SSRF guard,
  picshare/webhook_guard.py) and the event types, and makes a secret.
- The `webhooks` consumer finds the endpoints of the event's user subscribed
  to its type and, in one transaction on that user's shard, records the event
  as processed, one message per endpoint and the job of its first attempt: a
  redelivered event adds nothing, and the consumer never waits on a receiver.
- Each attempt is a durable job (picshare/jobs.py) due at its time: a crash
  loses no delivery. An attempt POSTs the signed body (picshare/webhook_post.py)
  and, in one transaction, counts itself on the message, logs itself and
  queues the next attempt on Standard Webhooks' schedule.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from picshare import webhook_guard, webhook_signature
from picshare.config import WebhookSettings
from picshare.consumers import Consumer, consumer
from picshare.domain_events import (
    COMMENT_CREATED,
    EVENT_TYPES,
    PAYMENT_TIP,
    PHOTO_DELETED,
    PHOTO_LIKED,
    PHOTO_READY,
    PHOTO_UPLOADED,
    USER_FOLLOWED,
    DomainEvent,
)
from picshare.errors import Conflict, FieldError, InvalidInput, NotFound, invalid
from picshare.jobs import JobKind, JobRunner
from picshare.pagination import Page, decode_cursor, page_of
from picshare.webhook_post import Attempt, post_signed
from storage import outbox_repo, webhooks_repo
from storage.records import DeliveryRecord, EndpointRecord
from storage.router import PRIMARY, read_your_writes
from storage.shards import Shards

log = logging.getLogger(__name__)

CONSUMER = "webhooks"
DELIVER_JOB = "webhook.deliver"
MAX_URL = 2000

# Standard Webhooks' schedule: the delay before each attempt (the first at
# once), in seconds; `webhooks.retry_scale` multiplies it.
SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
# A receiver's Retry-After is the next delay, up to the schedule's longest
# step: a receiver cannot park a message for days.
MAX_RETRY_AFTER = max(SCHEDULE)
JITTER = 0.2  # +-20%: the retries of many messages do not align

# Whose event it is: the field of its data naming the user whose webhooks get
# it (photo.ready names only the photo: its owner is looked up).
_RECIPIENT_FIELD = {
    PHOTO_UPLOADED: "owner_id",
    PHOTO_DELETED: "owner_id",
    PHOTO_LIKED: "owner_id",
    COMMENT_CREATED: "owner_id",
    USER_FOLLOWED: "followee_id",
    PAYMENT_TIP: "to_user_id",
}


@dataclass(frozen=True, slots=True)
class Created:
    endpoint: EndpointRecord
    secret: str  # shown once


def msg_id(event_id: int, endpoint_id: int) -> str:
    """The webhook-id of an event's message to one endpoint: the same on every
    attempt (receivers deduplicate by it), another for each endpoint."""
    return f"msg_{event_id}_{endpoint_id}"


def next_delay(attempt: int, result: Attempt, scale: float) -> float | None:
    """Seconds until the attempt after `attempt` (1-based), or None: no more."""
    if attempt >= len(SCHEDULE):
        return None
    if result.retry_after is not None:
        return min(result.retry_after, MAX_RETRY_AFTER)
    return SCHEDULE[attempt] * scale * random.uniform(1 - JITTER, 1 + JITTER)


class WebhookService:
    __slots__ = ("_db", "_http", "_jobs", "_settings")

    def __init__(
        self,
        *,
        db: Shards,
        jobs: JobRunner,
        settings: WebhookSettings,
        http: aiohttp.ClientSession,
    ) -> None:
        self._db = db
        self._jobs = jobs
        self._settings = settings
        # A session through the SSRF guard (webhook_guard.guarded_session).
        self._http = http

    def __repr__(self) -> str:
        return f"<WebhookService allow_loopback={self._settings.allow_loopback}>"

    def job_kinds(self) -> dict[str, JobKind]:
        return {DELIVER_JOB: JobKind(self._deliver_job)}

    def consumer(self) -> Consumer:
        return consumer(CONSUMER, self._on_event)

    # -- endpoints ------------------------------------------------------------

    async def register(self, user_id: int, url: Any, events: Any) -> Created:
        clean_url, clean_events = await self._checked(url, events)
        secret = webhook_signature.new_secret()
        async with self._db.of_user(user_id).transaction() as conn:
            await webhooks_repo.lock_user(conn, user_id)
            if await webhooks_repo.count_of_user(conn, user_id) >= self._settings.max_per_user:
                raise Conflict(
                    f"you have {self._settings.max_per_user} webhooks already: delete one first"
                )
            endpoint = await webhooks_repo.add_endpoint(
                conn, user_id=user_id, url=clean_url, events=clean_events, secret=secret
            )
        return Created(endpoint, secret)

    async def _checked(self, url: Any, events: Any) -> tuple[str, list[str]]:
        errors: list[FieldError] = []
        clean_url = ""
        if not isinstance(url, str) or not url.strip():
            errors.append(FieldError("url", "is required: the http(s) URL to POST events to"))
        else:
            clean_url = url.strip()
            parts = urlsplit(clean_url)
            if len(clean_url) > MAX_URL:
                errors.append(FieldError("url", f"must be at most {MAX_URL} characters"))
            elif parts.scheme not in ("http", "https") or not parts.hostname:
                errors.append(FieldError("url", "must be an http:// or https:// URL with a host"))
        clean_events: list[str] = []
        if not isinstance(events, list) or not events:
            errors.append(FieldError("events", "must be a non-empty list of event types"))
        else:
            unknown = [e for e in events if not isinstance(e, str) or e not in EVENT_TYPES]
            if unknown:
                errors.append(
                    FieldError(
                        "events",
                        f"unknown event type {unknown[0]!r}; the types are "
                        + ", ".join(sorted(EVENT_TYPES)),
                    )
                )
            clean_events = sorted(set(events)) if not unknown else []
        if errors:
            raise InvalidInput(errors)
        reason = await webhook_guard.check_url(
            clean_url,
            allow_loopback=self._settings.allow_loopback,
            timeout=self._settings.timeout,
        )
        if reason is not None:
            raise invalid("url", f"may not be reached: {reason}")
        return clean_url, clean_events

    async def endpoints(self, user_id: int) -> list[EndpointRecord]:
        async with self._db.of_user(user_id).read(read_your_writes(user_id)) as conn:
            return await webhooks_repo.endpoints_of(conn, user_id)

    async def delete(self, user_id: int, endpoint_id: int) -> None:
        """Its pending attempts stop too (their jobs find no message)."""
        async with self._db.of_id(endpoint_id).transaction() as conn:
            if not await webhooks_repo.delete_endpoint(
                conn, user_id=user_id, endpoint_id=endpoint_id
            ):
                raise NotFound("no such webhook")

    async def deliveries(
        self, user_id: int, endpoint_id: int, *, cursor: str | None, limit: int
    ) -> Page[DeliveryRecord]:
        before = decode_cursor(cursor)
        async with self._db.of_id(endpoint_id).read(read_your_writes(user_id)) as conn:
            endpoint = await webhooks_repo.endpoint(conn, endpoint_id)
            if endpoint is None or endpoint.user_id != user_id:
                raise NotFound("no such webhook")
            rows = await webhooks_repo.deliveries(conn, endpoint_id, before=before, limit=limit + 1)
        return page_of(rows, limit)

    # -- the consumer ---------------------------------------------------------

    async def _on_event(self, event: DomainEvent) -> None:
        user_id = await self._recipient(event)
        if user_id is None:
            return  # the photo is gone: nobody to tell
        queued = False
        async with self._db.of_user(user_id).transaction() as conn:
            endpoints = await webhooks_repo.subscribed(conn, user_id, event.type)
            # Most users have no webhooks: nothing done, nothing to record.
            if not endpoints or not await outbox_repo.first_time(conn, CONSUMER, event.id):
                return
            body = event.to_bytes().decode()
            for endpoint in endpoints:
                added = await webhooks_repo.add_message(
                    conn,
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type=event.type,
                    body=body,
                )
                if added:
                    await self._jobs.enqueue(conn, DELIVER_JOB, _payload(endpoint.id, event.id, 1))
                    queued = True
        if queued:
            self._jobs.wake()

    async def _recipient(self, event: DomainEvent) -> int | None:
        field = _RECIPIENT_FIELD.get(event.type)
        if field is not None:
            return int(event.data[field])
        if event.type == PHOTO_READY:
            photo_id = int(event.data["photo_id"])
            async with self._db.photos_of(photo_id).read(PRIMARY) as conn:
                return await webhooks_repo.photo_owner(conn, photo_id)
        return None

    # -- one attempt ----------------------------------------------------------

    async def _deliver_job(self, payload: dict[str, Any]) -> None:
        endpoint_id = int(payload["endpoint_id"])
        event_id = int(payload["event_id"])
        attempt = int(payload["attempt"])
        db = self._db.of_id(endpoint_id)
        async with db.read(PRIMARY) as conn:
            endpoint = await webhooks_repo.endpoint(conn, endpoint_id)
            message = await webhooks_repo.message(conn, endpoint_id, event_id)
        if endpoint is None or message is None:
            return  # the endpoint was deleted
        if message.state != webhooks_repo.PENDING or message.attempts >= attempt:
            return  # this attempt was made already (the job ran twice)
        if endpoint.disabled_at is not None:
            async with db.write() as conn:
                await webhooks_repo.stop_pending(conn, endpoint_id, event_id)
            return
        result = await self._attempt(endpoint, msg_id(event_id, endpoint_id), message.body)
        gone = result.status == 410
        delay = (
            None if result.ok or gone else next_delay(attempt, result, self._settings.retry_scale)
        )
        state = (
            webhooks_repo.DELIVERED
            if result.ok
            else webhooks_repo.PENDING
            if delay is not None
            else webhooks_repo.FAILED
        )
        async with db.transaction() as conn:
            if not await webhooks_repo.record_attempt(
                conn, endpoint_id=endpoint_id, event_id=event_id, attempt=attempt, state=state
            ):
                return  # another run of this job counted it first
            await webhooks_repo.log_delivery(
                conn,
                endpoint_id=endpoint_id,
                event_id=event_id,
                event_type=message.event_type,
                attempt=attempt,
                status=result.status,
                duration_ms=round(result.duration * 1000),
                error=result.error,
                next_delay=delay,
                keep=self._settings.log_keep,
            )
            if gone:
                # Gone: the receiver asks for no more (Standard Webhooks).
                await webhooks_repo.disable(conn, endpoint_id, "the receiver answered 410 Gone")
            if delay is not None:
                await self._jobs.enqueue(
                    conn, DELIVER_JOB, _payload(endpoint_id, event_id, attempt + 1), delay=delay
                )
        if delay is not None:
            self._jobs.wake()

    async def _attempt(self, endpoint: EndpointRecord, message_id: str, body: str) -> Attempt:
        """One signed POST, through the guard: an IP literal is checked here,
        a name by the session's resolver as it connects."""
        host = urlsplit(endpoint.url).hostname or ""
        reason = webhook_guard.refusal_of_literal(
            host, allow_loopback=self._settings.allow_loopback
        )
        if reason is not None:
            return Attempt(None, b"", None, f"refused: {reason}", 0.0)
        return await post_signed(
            self._http,
            endpoint.url,
            endpoint.secret,
            message_id,
            body.encode(),
            self._settings.timeout,
        )


def _payload(endpoint_id: int, event_id: int, attempt: int) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "event_id": event_id, "attempt": attempt}

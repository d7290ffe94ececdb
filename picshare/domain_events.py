"""Domain events: what happened, as consumers (renditions, notifications,
counters, and later webhooks) receive it. Written by picshare/outbox.py only.

An event's id is a PicShare ID (`picshare_next_id`) of the database whose
outbox holds it: unique across the site, sorted by time, and the key by which
a consumer knows it has already processed a redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

PHOTO_UPLOADED = "photo.uploaded"
PHOTO_READY = "photo.ready"
PHOTO_DELETED = "photo.deleted"
PHOTO_LIKED = "photo.liked"
COMMENT_CREATED = "comment.created"
USER_FOLLOWED = "user.followed"
# A new account, and an account whose privacy or display name changed (what
# the search index keeps of it).
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
PAYMENT_TIP = "payment.tip"
# Internal: notifications to write (picshare/notify.py), for the
# notifications service; not offered to webhooks, not counted.
NOTIFICATIONS_CHANGED = "notifications.changed"

EVENT_TYPES: frozenset[str] = frozenset(
    {
        PHOTO_UPLOADED,
        PHOTO_READY,
        PHOTO_DELETED,
        PHOTO_LIKED,
        COMMENT_CREATED,
        USER_FOLLOWED,
        USER_CREATED,
        USER_UPDATED,
        PAYMENT_TIP,
    }
)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        # The shape of a Standard Webhooks body (`type`, `timestamp`, `data`),
        # with the id that webhook deliveries will send as `webhook-id`.
        return {
            "id": str(self.id),
            "type": self.type,
            "timestamp": self.created_at.isoformat(),
            "data": self.data,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DomainEvent:
        return cls(
            id=int(value["id"]),
            type=str(value["type"]),
            data=dict(value["data"]),
            created_at=datetime.fromisoformat(str(value["timestamp"])),
        )

    @classmethod
    def from_bytes(cls, body: bytes) -> DomainEvent:
        value = orjson.loads(body)
        if not isinstance(value, dict):
            raise ValueError("an event is a JSON object")
        return cls.from_json(value)

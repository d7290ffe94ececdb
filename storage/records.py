"""Rows as typed, immutable records: what repositories hand to the services;
and the closed sets of values their text columns hold (the migrations' CHECK
constraints), named once for every layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg


class PhotoStatus(StrEnum):
    PROCESSING = "processing"  # uploaded; its renditions are being made
    READY = "ready"  # renditions exist: others may see it (picshare/privacy.py)
    REJECTED = "rejected"  # by moderation: only its owner sees it
    FAILED = "failed"  # could not be rendered


class ModerationState(StrEnum):
    """Where a photo stands with the moderation service (picshare/moderation.py)."""

    NONE = "none"  # no moderation asked: shown once rendered
    PENDING = "pending"  # waiting for the verdict
    APPROVED = "approved"
    REJECTED = "rejected"


class NotificationKind(StrEnum):
    LIKE = "like"
    COMMENT = "comment"
    FOLLOW = "follow"
    FOLLOW_REQUEST = "follow_request"
    PHOTO = "photo"  # someone one follows posted a photo
    TIP = "tip"  # someone tipped you (picshare/payments.py)


class TransferKind(StrEnum):
    TOPUP = "topup"  # from the stand-in payment provider into a wallet
    TIP = "tip"  # from one wallet to another


# Text -> member with one dict lookup: rows are converted on every list read.
_PHOTO_STATUS = {s.value: s for s in PhotoStatus}
_NOTIFICATION_KIND = {k.value: k for k in NotificationKind}
_TRANSFER_KIND = {k.value: k for k in TransferKind}


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    email: str
    password_hash: str
    display_name: str
    bio: str
    private: bool
    settings: dict[str, Any]
    photo_count: int
    follower_count: int
    following_count: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> UserRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    id: int
    owner_id: int
    owner_username: str
    owner_display_name: str
    owner_private: bool
    caption: str
    tags: list[str]
    status: PhotoStatus
    mime: str
    width: int
    height: int
    bytes: int
    blurhash: str | None
    upload_key: str
    original_key: str | None
    large_key: str | None
    medium_key: str | None
    thumb_key: str | None
    like_count: int
    comment_count: int
    created_at: datetime
    liked_by_me: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> PhotoRecord:
        fields = {name: row[name] for name in cls.__slots__}
        fields["status"] = _PHOTO_STATUS[fields["status"]]
        return cls(**fields)

    @property
    def rendition_keys(self) -> list[str]:
        keys = (self.original_key, self.large_key, self.medium_key, self.thumb_key)
        return [k for k in keys if k is not None]


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    locked_by: str | None
    locked_until: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> JobRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class CommentRecord:
    id: int
    photo_id: int
    user_id: int
    username: str
    display_name: str
    text: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> CommentRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class UserListEntry:
    """A user in a list (followers, requests, search), with the list's own key."""

    id: int  # the list's cursor key: follow or request id
    user_id: int
    username: str
    display_name: str
    private: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> UserListEntry:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: int
    user_id: int
    kind: NotificationKind
    actor_id: int
    actor_username: str
    photo_id: int | None
    comment_id: int | None
    text: str
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> NotificationRecord:
        fields = {name: row[name] for name in cls.__slots__}
        fields["kind"] = _NOTIFICATION_KIND[fields["kind"]]
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class WalletMovement:
    """One transfer as a wallet sees it: money in (positive) or out (negative)."""

    id: int
    kind: TransferKind
    amount_cents: int
    counterparty: str | None  # the other user's name; None for the payment provider
    photo_id: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> WalletMovement:
        fields = {name: row[name] for name in cls.__slots__}
        fields["kind"] = _TRANSFER_KIND[fields["kind"]]
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Relationship:
    """How the viewer stands towards another account."""

    following: bool
    requested: bool


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A user's webhook endpoint (storage/webhooks_repo.py)."""

    id: int
    user_id: int
    url: str
    events: list[str]
    secret: str
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> EndpointRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class MessageRecord:
    endpoint_id: int
    event_id: int
    event_type: str
    body: str
    attempts: int
    state: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> MessageRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    endpoint_id: int
    event_id: int
    event_type: str
    attempt: int
    status: int | None
    duration_ms: int
    error: str
    next_attempt_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> DeliveryRecord:
        return cls(**{name: row[name] for name in cls.__slots__})

"""Opaque cursors for keyset pagination over time-ordered ids."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from picshare.errors import invalid
from picshare.ids import parse_id


class HasId(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=HasId)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id to continue before; a malformed cursor is a 400 naming `cursor`."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("cursor", "is not a cursor this server made") from None
    prefix, _, value = raw.partition(":")
    last_id = parse_id(value) if prefix == "v1" else None
    if last_id is None:
        raise invalid("cursor", "is not a cursor this server made")
    return last_id


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= maximum:
        raise invalid("limit", f"must be a whole number from 1 to {maximum}")
    return int(raw)


def page_of(rows: list[T], limit: int) -> Page[T]:
    """`rows` was fetched with limit+1: the extra row only says there is more."""
    items = rows[:limit]
    has_more = len(rows) > limit and bool(items)
    return Page(items, encode_cursor(items[-1].id) if has_more else None)

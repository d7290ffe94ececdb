"""Opaque cursors for keyset pagination over time-ordered ids."""

from __future__ import annotations

import base64
import binascii
import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Generic, Protocol, TypeVar

from picshare.errors import invalid
from storage.ids import parse_id


class HasId(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=HasId)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    # One object handed to every reader while its cache entry holds (the
    # signed-out front page): what is made from it may be kept with it.
    shared: bool = False
    # A shard was left out of the read (storage/shards.py, `gather`): some
    # items may be missing. Such a page is never cached as the whole page.
    partial: bool = False


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


# What encode_cursor makes (unpadded URL-safe base64), as openapi.json says.
# Checked first: the decoder would skip other characters, and an empty
# `?cursor=` is a client's mistake, not "the first page".
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,64}")


def decode_cursor(cursor: str | None) -> int | None:
    """The id to continue before (None: the first page); a malformed cursor,
    the empty one included, is a 400 naming `cursor`."""
    if cursor is None:
        return None
    if not _CURSOR.fullmatch(cursor):
        raise invalid("cursor", "is not a cursor this server made")
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


def page_of(rows: list[T], limit: int, *, shared: bool = False, partial: bool = False) -> Page[T]:
    """`rows` was fetched with limit+1: the extra row only says there is more."""
    items = rows[:limit]
    has_more = len(rows) > limit and bool(items)
    return Page(items, encode_cursor(items[-1].id) if has_more else None, shared, partial)


def newest(parts: Iterable[list[T]], count: int) -> list[T]:
    """The `count` highest ids of several lists each sorted by id descending
    (one per shard): ids sort by time, so this is the newest first. Each list
    holds its own newest `count` below the cursor, so none of the merged
    page's rows can be missing and the next cursor skips nothing."""
    return list(islice(heapq.merge(*parts, key=_desc), count))


def _desc(item: HasId) -> int:
    return -item.id

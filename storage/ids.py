"""Instagram-style 64-bit IDs (made in SQL by `picshare_next_id()`), decoded here.

Layout: 41 bits of milliseconds since 2026-01-01T00:00:00Z, 13 bits of
logical shard, 10 bits of sequence. JSON carries them as strings because
JavaScript numbers lose precision above 2^53.
"""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH_MS = 1_767_225_600_000
MAX_ID = (1 << 63) - 1


def compose(ms: int, logical: int, sequence: int) -> int:
    """The ID `picshare_next_id(logical)` would make at `ms` milliseconds since
    the epoch with that sequence number (bulk loads make their own)."""
    return (ms << 23) | ((logical & 0x1FFF) << 10) | (sequence & 0x3FF)


def shard_of(id_: int) -> int:
    return (id_ >> 10) & 0x1FFF


def created_at_of(id_: int) -> datetime:
    return datetime.fromtimestamp(((id_ >> 23) + EPOCH_MS) / 1000, tz=UTC)


def parse_id(text: str) -> int | None:
    """The id in a path or JSON string, or None when it is not one."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None

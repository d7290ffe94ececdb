"""WAL positions (`pg_lsn`, printed as `16/B374D848`) as integers, so they compare."""

from __future__ import annotations


def parse_lsn(text: str | None) -> int:
    """`'16/B374D848'` -> 0x16_B374D848; None (no WAL replayed yet) -> 0."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"

"""What `run.py shards` shows of each physical database: its logical shards,
row counts and size."""

from __future__ import annotations

from dataclasses import dataclass

from storage.router import PRIMARY
from storage.shards import Shards

# Estimates from the statistics, not count(*): a shard of millions answers at once.
_ROWS = (
    "SELECT relname, greatest(reltuples, 0)::bigint AS n FROM pg_class "
    "WHERE relkind = 'r' AND relname = ANY($1::text[])"
)
TABLES = ("users", "photos", "likes", "comments", "follows", "notifications")


@dataclass(frozen=True, slots=True)
class ShardStats:
    label: str
    logical: list[int]
    rows: dict[str, int]
    size_bytes: int


async def shard_stats(shards: Shards) -> list[ShardStats]:
    found: list[ShardStats] = []
    for index, db in enumerate(shards.physical):
        async with db.read(PRIMARY) as conn:
            rows = {r["relname"]: r["n"] for r in await conn.fetch(_ROWS, list(TABLES))}
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
        found.append(
            ShardStats(
                label=db.primary.label,
                logical=shards.map.logical_on(index),
                rows={t: int(rows.get(t, 0)) for t in TABLES},
                size_bytes=int(size),
            )
        )
    return found


def ranges_text(numbers: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    parts: list[str] = []
    start = prev = None
    for n in [*numbers, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(parts) or "none"

"""Bulk loading for `run.py seed`: COPY in chunks, then recount denormalized columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from storage.db import Connection

CHUNK = 50_000


async def copy_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """COPY rows into a table, CHUNK at a time (so progress can be shown)."""
    done = 0
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            await conn.copy_records_to_table(table, records=chunk, columns=list(columns))
            done += len(chunk)
            chunk = []
            if progress:
                progress(done)
    if chunk:
        await conn.copy_records_to_table(table, records=chunk, columns=list(columns))
        done += len(chunk)
        if progress:
            progress(done)
    return done


async def ids_by(conn: Connection, table: str, order_column: str = "id") -> list[int]:
    # table and column come from the seeder's own constants, never from input.
    return [int(r[0]) for r in await conn.fetch(f"SELECT id FROM {table} ORDER BY {order_column}")]


async def recount(
    conn: Connection,
    *,
    like_counts: Mapping[int, int] | None = None,
    comment_counts: Mapping[int, int] | None = None,
) -> None:
    """Make every denormalized count exact after a bulk load. `like_counts`,
    `comment_counts`: the photos' counts, where likes or comments live in a
    database of their own (else counted here)."""
    for column, table, given in (
        ("like_count", "likes", like_counts),
        ("comment_count", "comments", comment_counts),
    ):
        # column and table are the constants above, never input.
        if given is None:
            await conn.execute(
                f"UPDATE photos p SET {column} = c.n FROM "
                f"(SELECT photo_id, count(*) AS n FROM {table} GROUP BY photo_id) c "
                "WHERE p.id = c.photo_id"
            )
        else:
            # Every photo's id is offered; the UPDATE finds those of this database.
            await conn.execute(
                f"UPDATE photos p SET {column} = c.n FROM unnest($1::bigint[], $2::int[]) "
                "AS c (photo_id, n) WHERE p.id = c.photo_id",
                list(given),
                list(given.values()),
            )
    await conn.execute(
        "UPDATE users u SET photo_count = coalesce(p.n, 0), follower_count = coalesce(fr.n, 0), "
        "following_count = coalesce(fg.n, 0) FROM users x "
        "LEFT JOIN (SELECT owner_id, count(*) AS n FROM photos GROUP BY owner_id) p "
        "  ON p.owner_id = x.id "
        "LEFT JOIN (SELECT followee_id, count(*) AS n FROM follows GROUP BY followee_id) fr "
        "  ON fr.followee_id = x.id "
        "LEFT JOIN (SELECT follower_id, count(*) AS n FROM follows GROUP BY follower_id) fg "
        "  ON fg.follower_id = x.id "
        "WHERE u.id = x.id"
    )
    await conn.execute(
        "INSERT INTO tags (tag, photo_count) SELECT t, count(*) FROM photos, unnest(tags) t "
        "GROUP BY t ON CONFLICT (tag) DO UPDATE SET photo_count = excluded.photo_count"
    )


async def analyze(conn: Connection) -> None:
    await conn.execute("ANALYZE")

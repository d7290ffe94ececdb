"""SQL of the search index (`search_photos`, picshare/search_index.py): each
row is made from the photo and its owner as they are now, so whatever event
asked for it, in whatever order, a row ends up as the photo is."""

from __future__ import annotations

from storage.db import Connection

# The index row of each photo chosen by `{where}` (over `photos p`), from
# the photo and its owner as they are now.
_ROWS = (
    "SELECT p.id, p.owner_id, u.private, p.status, p.caption_tsv "
    "FROM photos p JOIN users u ON u.id = p.owner_id WHERE {where}"
)
_UPSERT = (
    "INSERT INTO search_photos (id, owner_id, private, status, tsv) {rows} "
    "ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, "
    "private = EXCLUDED.private, status = EXCLUDED.status, tsv = EXCLUDED.tsv, "
    "indexed_at = now()"
)
# $1 photo
SYNC_PHOTO_SQL = _UPSERT.format(rows=_ROWS.format(where="p.id = $1"))
FORGET_GONE_SQL = (
    "DELETE FROM search_photos s WHERE s.id = $1 "
    "AND NOT EXISTS (SELECT 1 FROM photos p WHERE p.id = s.id)"
)
# $1 owner
OWNER_PRIVACY_SQL = (
    "UPDATE search_photos s SET private = u.private, indexed_at = now() FROM users u "
    "WHERE u.id = $1 AND s.owner_id = $1 AND s.private IS DISTINCT FROM u.private"
)
# $1 after this photo id, $2 batch size: the next batch, in id order.
REINDEX_BATCH_SQL = (
    "WITH batch AS ("
    + _UPSERT.format(rows=_ROWS.format(where="p.id > $1") + " ORDER BY p.id LIMIT $2")
    + " RETURNING id) SELECT count(*) AS n, max(id) AS last FROM batch"
)
# $1 after, $2 up to: index rows in that range whose photo is gone.
PRUNE_SQL = (
    "DELETE FROM search_photos s WHERE s.id > $1 AND s.id <= $2 "
    "AND NOT EXISTS (SELECT 1 FROM photos p WHERE p.id = s.id)"
)


async def sync_photo(conn: Connection, photo_id: int) -> None:
    """The photo's row as the photo now is; none once it is deleted."""
    await conn.execute(SYNC_PHOTO_SQL, photo_id)
    await conn.execute(FORGET_GONE_SQL, photo_id)


async def owner_privacy(conn: Connection, owner_id: int) -> int:
    """The owner's rows get the owner's privacy as it now is; how many changed."""
    status = await conn.execute(OWNER_PRIVACY_SQL, owner_id)
    return int(status.split()[-1])


async def photo_count(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM photos"))


async def reindex_position(conn: Connection) -> tuple[int, bool]:
    """Where the last reindex of this database stopped, and whether it finished."""
    row = await conn.fetchrow("SELECT after_id, finished_at FROM search_reindex")
    if row is None:
        return 0, False
    return int(row["after_id"]), row["finished_at"] is not None


async def reindex_start(conn: Connection) -> None:
    """A new pass from the first photo."""
    await conn.execute(
        "INSERT INTO search_reindex (after_id) VALUES (0) ON CONFLICT (singleton) "
        "DO UPDATE SET after_id = 0, started_at = now(), finished_at = NULL"
    )


async def reindex_batch(conn: Connection, after_id: int, size: int) -> tuple[int, int | None]:
    """Index the next `size` photos after `after_id`, prune index rows of
    photos deleted in that range, and record the position (all in the
    caller's transaction): how many photos, and the last id (None: done)."""
    row = await conn.fetchrow(REINDEX_BATCH_SQL, after_id, size)
    count = int(row["n"]) if row is not None else 0
    last = None if row is None or row["last"] is None else int(row["last"])
    if last is None:
        await conn.execute(
            "DELETE FROM search_photos s WHERE s.id > $1 "
            "AND NOT EXISTS (SELECT 1 FROM photos p WHERE p.id = s.id)",
            after_id,
        )
        await conn.execute("UPDATE search_reindex SET finished_at = now()")
        return 0, None
    await conn.execute(PRUNE_SQL, after_id, last)
    await conn.execute("UPDATE search_reindex SET after_id = $1", last)
    return count, last

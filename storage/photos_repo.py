"""SQL for photos. Lists are keyset-paginated on the time-ordered id, so pages
never skip or repeat a photo while new ones arrive (they only appear at the head)."""

from __future__ import annotations

from storage.db import Connection
from storage.records import PhotoRecord

_SELECT = (
    "SELECT p.id, p.owner_id, u.username AS owner_username, "
    "u.display_name AS owner_display_name, u.private AS owner_private, p.caption, p.tags, "
    "p.status, p.mime, p.width, p.height, p.bytes, p.blurhash, p.upload_key, p.original_key, "
    "p.large_key, p.medium_key, p.thumb_key, p.like_count, p.comment_count, p.created_at "
    "FROM photos p JOIN users u ON u.id = p.owner_id "
)
# 2^63 - 1: "no cursor yet" without a second query text.
_MAX_ID = 9_223_372_036_854_775_807


async def insert_photo(
    conn: Connection,
    *,
    owner_id: int,
    caption: str,
    tags: list[str],
    mime: str,
    width: int,
    height: int,
    size: int,
    upload_key: str,
) -> int:
    photo_id = await conn.fetchval(
        "INSERT INTO photos (owner_id, caption, tags, mime, width, height, bytes, upload_key) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        owner_id,
        caption,
        tags,
        mime,
        width,
        height,
        size,
        upload_key,
    )
    await conn.execute("UPDATE users SET photo_count = photo_count + 1 WHERE id = $1", owner_id)
    return int(photo_id)


async def photo_by_id(conn: Connection, photo_id: int) -> PhotoRecord | None:
    row = await conn.fetchrow(_SELECT + "WHERE p.id = $1", photo_id)
    return None if row is None else PhotoRecord.from_row(row)


async def list_public(
    conn: Connection, *, before: int | None, limit: int, tag: str | None = None
) -> list[PhotoRecord]:
    """Ready photos of public accounts, newest first."""
    rows = await conn.fetch(
        _SELECT + "WHERE p.status = 'ready' AND NOT u.private AND p.id < $1 "
        "AND ($3::text IS NULL OR p.tags @> ARRAY[$3::text]) "
        "ORDER BY p.id DESC LIMIT $2",
        before or _MAX_ID,
        limit,
        tag,
    )
    return [PhotoRecord.from_row(r) for r in rows]


async def list_by_owner(
    conn: Connection,
    *,
    owner_id: int,
    before: int | None,
    limit: int,
    include_unready: bool,
    tag: str | None = None,
) -> list[PhotoRecord]:
    rows = await conn.fetch(
        _SELECT + "WHERE p.owner_id = $1 AND p.id < $2 AND ($4 OR p.status = 'ready') "
        "AND ($5::text IS NULL OR p.tags @> ARRAY[$5::text]) "
        "ORDER BY p.id DESC LIMIT $3",
        owner_id,
        before or _MAX_ID,
        limit,
        include_unready,
        tag,
    )
    return [PhotoRecord.from_row(r) for r in rows]


async def delete_photo(conn: Connection, photo_id: int) -> PhotoRecord | None:
    """Delete the row (and fix the owner's count); return what it was."""
    photo = await photo_by_id(conn, photo_id)
    if photo is None:
        return None
    deleted = await conn.execute("DELETE FROM photos WHERE id = $1", photo_id)
    if deleted != "DELETE 1":
        return None
    await conn.execute(
        "UPDATE users SET photo_count = photo_count - 1 WHERE id = $1", photo.owner_id
    )
    return photo


async def lock_photo(conn: Connection, photo_id: int) -> PhotoRecord | None:
    row = await conn.fetchrow("SELECT id FROM photos WHERE id = $1 FOR UPDATE", photo_id)
    return None if row is None else await photo_by_id(conn, photo_id)


async def mark_ready(
    conn: Connection,
    photo_id: int,
    *,
    keys: dict[str, str],
    width: int,
    height: int,
    blurhash: str,
) -> bool:
    """Record the renditions; False if the photo was deleted meanwhile."""
    result = await conn.execute(
        "UPDATE photos SET status = 'ready', original_key = $2, large_key = $3, medium_key = $4, "
        "thumb_key = $5, width = $6, height = $7, blurhash = $8, updated_at = now() "
        "WHERE id = $1 AND status = 'processing'",
        photo_id,
        keys["original"],
        keys["large"],
        keys["medium"],
        keys["thumb"],
        width,
        height,
        blurhash,
    )
    return bool(result == "UPDATE 1")


async def mark_failed(conn: Connection, photo_id: int) -> None:
    await conn.execute(
        "UPDATE photos SET status = 'failed', updated_at = now() "
        "WHERE id = $1 AND status = 'processing'",
        photo_id,
    )


async def key_in_use(conn: Connection, key: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM photos WHERE upload_key = $1 OR original_key = $1 "
            "OR large_key = $1 OR medium_key = $1 OR thumb_key = $1)",
            key,
        )
    )


async def lock_blob_key(conn: Connection, key: str) -> None:
    """Serialize, per key, "a row now uses this blob" against "delete this unused blob".

    Held to the end of the transaction: an upload that stores a blob and
    inserts its row, and a collector that checks references and deletes the
    file, take the same lock, so the collector never removes a file a row is
    about to use.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", key)

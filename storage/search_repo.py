"""SQL for search: users by prefix and trigram similarity, tags by prefix,
photos by caption words (PostgreSQL full-text, prefix-matched), ranked."""

from __future__ import annotations

from storage.db import Connection
from storage.photos_repo import _COLUMNS as PHOTO_COLUMNS
from storage.records import PhotoRecord, UserListEntry
from storage.visibility import VISIBLE

# $1 query, $2 LIKE prefix, $3 limit
USERS_SQL = (
    "SELECT id, id AS user_id, username, display_name, private FROM ("
    "  SELECT u.*, CASE WHEN u.username = $1 THEN 3 WHEN u.username LIKE $2 THEN 2 "
    "         ELSE 1 END AS tier, similarity(u.username, $1) AS sim"
    "  FROM users u WHERE u.username LIKE $2 OR u.username % $1"
    ") m ORDER BY tier DESC, sim DESC, username LIMIT $3"
)
# $1 LIKE prefix, $2 limit
TAGS_SQL = (
    "SELECT tag, photo_count FROM tags WHERE tag LIKE $1 AND photo_count > 0 "
    "ORDER BY photo_count DESC, tag LIMIT $2"
)
# $1 viewer, $2 tsquery, $3 limit
PHOTOS_SQL = (
    f"SELECT {PHOTO_COLUMNS} FROM photos p JOIN users u ON u.id = p.owner_id "
    f"WHERE p.caption_tsv @@ to_tsquery('simple', $2) AND {VISIBLE} "
    "ORDER BY ts_rank(p.caption_tsv, to_tsquery('simple', $2)) DESC, p.id DESC LIMIT $3"
)


async def users(conn: Connection, query: str, *, limit: int) -> list[UserListEntry]:
    """Exact, then prefix, then fuzzy (pg_trgm) matches on the username."""
    rows = await conn.fetch(
        USERS_SQL,
        query,
        like_prefix(query),
        limit,
    )
    return [UserListEntry.from_row(r) for r in rows]


async def tags(conn: Connection, prefix: str, *, limit: int) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        TAGS_SQL,
        like_prefix(prefix),
        limit,
    )
    return [(str(r["tag"]), int(r["photo_count"])) for r in rows]


async def photos(
    conn: Connection, tsquery: str, *, viewer_id: int | None, limit: int
) -> list[PhotoRecord]:
    """Photos whose caption matches, best first; only those the viewer may see."""
    rows = await conn.fetch(
        PHOTOS_SQL,
        viewer_id,
        tsquery,
        limit,
    )
    return [PhotoRecord.from_row(r) for r in rows]


def like_prefix(text: str) -> str:
    # LIKE's own wildcards in the user's text are literals.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

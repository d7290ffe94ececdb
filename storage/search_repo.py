"""SQL for search: users by prefix and trigram similarity, tags by prefix,
photos by caption words (PostgreSQL full-text, prefix-matched), ranked."""

from __future__ import annotations

from storage.db import Connection
from storage.photos_repo import _COLUMNS as PHOTO_COLUMNS
from storage.records import PhotoRecord, UserListEntry
from storage.visibility import VISIBLE

# $1 query, $2 LIKE prefix, $3 limit
USERS_SQL = (
    "SELECT id, id AS user_id, username, display_name, private, tier, sim FROM ("
    "  SELECT u.*, CASE WHEN u.username = $1 THEN 3 WHEN u.username LIKE $2 THEN 2 "
    "         ELSE 1 END AS tier, similarity(u.username, $1) AS sim"
    "  FROM users u WHERE u.username LIKE $2 OR u.username % $1"
    ") m ORDER BY tier DESC, sim DESC, username LIMIT $3"
)
# $1 tags: their photo counts on this database
TAG_COUNTS_SQL = "SELECT tag, photo_count FROM tags WHERE tag = ANY($1::text[])"
# $1 LIKE prefix, $2 limit
TAGS_SQL = (
    "SELECT tag, photo_count FROM tags WHERE tag LIKE $1 AND photo_count > 0 "
    "ORDER BY photo_count DESC, tag LIMIT $2"
)
# $1 viewer, $2 tsquery, $3 limit
PHOTOS_SQL = (
    f"SELECT {PHOTO_COLUMNS}, ts_rank(p.caption_tsv, to_tsquery('simple', $2)) AS rank "
    "FROM photos p JOIN users u ON u.id = p.owner_id "
    f"WHERE p.caption_tsv @@ to_tsquery('simple', $2) AND {VISIBLE} "
    "ORDER BY ts_rank(p.caption_tsv, to_tsquery('simple', $2)) DESC, p.id DESC LIMIT $3"
)


# How results of several shards merge: each shard ranks its own the same way,
# and these keys sort the union into the order one database would give.
UserKey = tuple[int, float, str]
PhotoKey = tuple[float, int]


async def users(conn: Connection, query: str, *, limit: int) -> list[tuple[UserKey, UserListEntry]]:
    """Exact, then prefix, then fuzzy (pg_trgm) matches on the username, each
    with its sort key (ascending: best first)."""
    rows = await conn.fetch(
        USERS_SQL,
        query,
        like_prefix(query),
        limit,
    )
    return [
        ((-int(r["tier"]), -float(r["sim"]), str(r["username"])), UserListEntry.from_row(r))
        for r in rows
    ]


async def tags(conn: Connection, prefix: str, *, limit: int) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        TAGS_SQL,
        like_prefix(prefix),
        limit,
    )
    return [(str(r["tag"]), int(r["photo_count"])) for r in rows]


async def tag_counts(conn: Connection, tags: list[str]) -> dict[str, int]:
    """Photo counts on this database of exactly these tags."""
    rows = await conn.fetch(TAG_COUNTS_SQL, tags)
    return {str(r["tag"]): int(r["photo_count"]) for r in rows}


async def photos(
    conn: Connection, tsquery: str, *, viewer_id: int | None, limit: int
) -> list[tuple[PhotoKey, PhotoRecord]]:
    """Photos whose caption matches, best first; only those the viewer may
    see; each with its sort key (ascending: best first)."""
    rows = await conn.fetch(
        PHOTOS_SQL,
        viewer_id,
        tsquery,
        limit,
    )
    return [((-float(r["rank"]), -int(r["id"])), PhotoRecord.from_row(r)) for r in rows]


def like_prefix(text: str) -> str:
    # LIKE's own wildcards in the user's text are literals.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

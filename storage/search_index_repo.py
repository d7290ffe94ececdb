"""SQL of the search index (picshare/search_index.py): `search_photos`,
`search_users` and `search_tags`, with `search_progress` for reindexing.

Each row is made from the photo, user or tag as it now is on its own database
(the source), read there and then written to the index's database (the
SEARCH group's own, or the same one): no statement joins the two, so the
index may live apart. What an event asked for is read afresh, so whatever
event, in whatever order, a row ends up as its source is. Writers of one
row take turns (`lock_*`): a slower writer's older read cannot land last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from storage.db import Connection

# Advisory lock namespace of tag rows (the two-int form: its own key space,
# apart from the one-bigint form that photo and user ids lock).
_TAG_LOCKS = 0x5354


class PhotoRow(NamedTuple):
    id: int
    owner_id: int
    private: bool
    status: str
    tsv: str  # the caption's tsvector, in its text form
    tags: list[str]  # not indexed here: whose counts a photo event changes


class UserRow(NamedTuple):
    id: int
    username: str
    display_name: str
    private: bool


# -- reading the sources (photos and users on their shard) --------------------

_PHOTO_ROWS = (
    "SELECT p.id, p.owner_id, p.owner_private, p.status, p.caption_tsv::text AS tsv, p.tags "
    "FROM photos p WHERE {where}"
)
PHOTOS_BY_ID_SQL = _PHOTO_ROWS.format(where="p.id = ANY($1::bigint[])")
PHOTOS_AFTER_SQL = _PHOTO_ROWS.format(where="p.id > $1") + " ORDER BY p.id LIMIT $2"
_USER_ROWS = "SELECT id, username, display_name, private FROM users WHERE {where}"
USERS_BY_ID_SQL = _USER_ROWS.format(where="id = ANY($1::bigint[])")
USERS_AFTER_SQL = _USER_ROWS.format(where="id > $1") + " ORDER BY id LIMIT $2"


async def photo_rows(conn: Connection, photo_ids: Sequence[int]) -> list[PhotoRow]:
    """These photos' index rows as they now are (a deleted photo has none)."""
    return [PhotoRow(*r) for r in await conn.fetch(PHOTOS_BY_ID_SQL, list(photo_ids))]


async def photos_after(conn: Connection, after_id: int, size: int) -> list[PhotoRow]:
    """The next `size` photos after `after_id`, in id order."""
    return [PhotoRow(*r) for r in await conn.fetch(PHOTOS_AFTER_SQL, after_id, size)]


async def user_rows(conn: Connection, user_ids: Sequence[int]) -> list[UserRow]:
    return [UserRow(*r) for r in await conn.fetch(USERS_BY_ID_SQL, list(user_ids))]


async def users_after(conn: Connection, after_id: int, size: int) -> list[UserRow]:
    return [UserRow(*r) for r in await conn.fetch(USERS_AFTER_SQL, after_id, size)]


async def user_privacy(conn: Connection, user_id: int) -> bool | None:
    """The account's privacy now (None: no such account)."""
    value = await conn.fetchval("SELECT private FROM users WHERE id = $1", user_id)
    return None if value is None else bool(value)


async def tag_counts(conn: Connection, tags: Sequence[str]) -> dict[str, int]:
    """This database's photo counts of these tags (0 when it has none)."""
    rows = await conn.fetch(
        "SELECT tag, photo_count FROM tags WHERE tag = ANY($1::text[])", list(tags)
    )
    found = {str(r["tag"]): int(r["photo_count"]) for r in rows}
    return {tag: found.get(tag, 0) for tag in tags}


async def tags_after(conn: Connection, after: str, size: int) -> list[tuple[str, int]]:
    """The next `size` tags after `after` with photos, in tag order."""
    rows = await conn.fetch(
        "SELECT tag, photo_count FROM tags WHERE tag > $1 AND photo_count > 0 "
        "ORDER BY tag LIMIT $2",
        after,
        size,
    )
    return [(str(r["tag"]), int(r["photo_count"])) for r in rows]


async def photo_count(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM photos"))


# -- writing the index ---------------------------------------------------------

UPSERT_PHOTOS_SQL = (
    "INSERT INTO search_photos (id, owner_id, private, status, tsv) "
    "SELECT i, o, pr, st, t::tsvector FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], "
    "$4::text[], $5::text[]) AS r(i, o, pr, st, t) "
    "ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, "
    "private = EXCLUDED.private, status = EXCLUDED.status, tsv = EXCLUDED.tsv, "
    "indexed_at = now()"
)
UPSERT_USERS_SQL = (
    "INSERT INTO search_users (id, username, display_name, private) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[]) "
    "ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, "
    "display_name = EXCLUDED.display_name, private = EXCLUDED.private, indexed_at = now()"
)
# $1 owner, $2 privacy now
OWNER_PRIVACY_SQL = (
    "UPDATE search_photos SET private = $2, indexed_at = now() "
    "WHERE owner_id = $1 AND private IS DISTINCT FROM $2"
)
# The rows of `{table}` in ($1, $2] (no upper end when $2 is NULL) that are
# not among $3, of the logical shards $4 (NULL: all; with the index apart,
# other sources' rows share the id range).
_PRUNE = (
    "DELETE FROM {table} s WHERE s.id > $1 AND ($2::bigint IS NULL OR s.id <= $2) "
    "AND NOT (s.id = ANY($3::bigint[])) "
    "AND ($4::int[] IS NULL OR ((s.id >> 10) & 8191) = ANY($4::int[]))"
)


async def lock_row(conn: Connection, row_id: int) -> None:
    """Writers of one photo's or user's index row take turns (till commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", row_id)


async def lock_tags(conn: Connection, tags: Sequence[str]) -> None:
    """Writers of these tags' rows take turns (sorted: never a deadlock)."""
    for tag in sorted(set(tags)):
        await conn.execute("SELECT pg_advisory_xact_lock($1::int, hashtext($2))", _TAG_LOCKS, tag)


async def upsert_photos(conn: Connection, rows: Sequence[PhotoRow]) -> None:
    if rows:
        await conn.execute(
            UPSERT_PHOTOS_SQL,
            [r.id for r in rows],
            [r.owner_id for r in rows],
            [r.private for r in rows],
            [r.status for r in rows],
            [r.tsv for r in rows],
        )


async def forget_photos(conn: Connection, photo_ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM search_photos WHERE id = ANY($1::bigint[])", list(photo_ids))


async def owner_privacy(conn: Connection, owner_id: int, private: bool) -> int:
    """The owner's rows get this privacy; how many changed."""
    status = await conn.execute(OWNER_PRIVACY_SQL, owner_id, private)
    return int(status.split()[-1])


async def upsert_users(conn: Connection, rows: Sequence[UserRow]) -> None:
    if rows:
        await conn.execute(
            UPSERT_USERS_SQL,
            [r.id for r in rows],
            [r.username for r in rows],
            [r.display_name for r in rows],
            [r.private for r in rows],
        )


async def forget_users(conn: Connection, user_ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM search_users WHERE id = ANY($1::bigint[])", list(user_ids))


async def set_tag_counts(conn: Connection, source: int, counts: dict[str, int]) -> None:
    """These tags' counts on database `source` (a tag it no longer has goes)."""
    kept = {tag: n for tag, n in counts.items() if n > 0}
    gone = [tag for tag, n in counts.items() if n <= 0]
    if kept:
        await conn.execute(
            "INSERT INTO search_tags (tag, source, photo_count) "
            "SELECT t, $1, n FROM unnest($2::text[], $3::int[]) AS r(t, n) "
            "ON CONFLICT (tag, source) DO UPDATE SET photo_count = EXCLUDED.photo_count",
            source,
            list(kept),
            list(kept.values()),
        )
    if gone:
        await conn.execute(
            "DELETE FROM search_tags WHERE source = $1 AND tag = ANY($2::text[])", source, gone
        )


async def prune_tags(
    conn: Connection, source: int, after: str, upto: str | None, kept: Sequence[str]
) -> None:
    """Tags of `source` in (after, upto] (no end: None) that the batch just
    read there did not bring: their source has no photo with them any more."""
    await conn.execute(
        "DELETE FROM search_tags s WHERE s.source = $1 AND s.tag > $2 "
        "AND ($3::text IS NULL OR s.tag <= $3) AND NOT (s.tag = ANY($4::text[]))",
        source,
        after,
        upto,
        list(kept),
    )


async def prune(
    conn: Connection,
    table: str,
    after_id: int,
    upto: int | None,
    kept: Sequence[int],
    logicals: Sequence[int] | None,
) -> None:
    """Index rows of `table` (search_photos, search_users) in (after, upto]
    whose source row is gone: not among `kept`, the batch just read there."""
    if table not in ("search_photos", "search_users"):
        raise ValueError(table)
    await conn.execute(
        _PRUNE.format(table=table),
        after_id,
        upto,
        list(kept),
        None if logicals is None else list(logicals),
    )


async def tidy(conn: Connection) -> None:
    """After a reindex's bulk writes: the visibility map set (the prefix
    scans become index-only) and fresh statistics for the planner. Outside
    a transaction."""
    await conn.execute("VACUUM (ANALYZE) search_photos, search_users, search_tags")


# -- where a reindex is -------------------------------------------------------


async def reindex_position(conn: Connection, source: int, kind: str) -> tuple[int, bool]:
    """Where the last reindex of `kind` from `source` stopped, and whether it finished."""
    row = await conn.fetchrow(
        "SELECT after_id, finished_at FROM search_progress WHERE source = $1 AND kind = $2",
        source,
        kind,
    )
    if row is None:
        return 0, False
    return int(row["after_id"]), row["finished_at"] is not None


async def reindex_start(conn: Connection, source: int, kind: str) -> None:
    """A new pass from the first row."""
    await conn.execute(
        "INSERT INTO search_progress (source, kind) VALUES ($1, $2) ON CONFLICT (source, kind) "
        "DO UPDATE SET after_id = 0, started_at = now(), finished_at = NULL",
        source,
        kind,
    )


async def reindex_at(conn: Connection, source: int, kind: str, after_id: int | None) -> None:
    """Record the position (None: the pass finished)."""
    if after_id is None:
        await conn.execute(
            "UPDATE search_progress SET finished_at = now() WHERE source = $1 AND kind = $2",
            source,
            kind,
        )
    else:
        await conn.execute(
            "UPDATE search_progress SET after_id = $3 WHERE source = $1 AND kind = $2",
            source,
            kind,
            after_id,
        )

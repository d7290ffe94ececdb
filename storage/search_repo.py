"""SQL for search, over the search index (picshare/search_index.py): users
(`search_users`) and tags (`search_tags`) by prefix and trigram similarity,
photos (`search_photos`) by caption words (PostgreSQL full-text,
prefix-matched), ranked among the newest matches.

Where the index shares its database with the photos, one statement finds a
shard's photos and applies the privacy rule to them as they are; where it
has a database of its own, the candidates are found there and the rule runs
again on the photos' own shards (`visible_photos`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from storage import photos_repo
from storage.db import Connection
from storage.photos_repo import _COLUMNS as PHOTO_COLUMNS
from storage.records import PhotoRecord, UserListEntry
from storage.visibility import VISIBLE, photo_visible

# $1 query, $2 LIKE prefix, $3 limit: exact, then prefix, then fuzzy
# (pg_trgm) matches, each tier by similarity. The best names are chosen from
# the username alone (with the id, from the prefix index), and only those
# rows are read, by id.
_TIERED = (
    "SELECT u.id, u.id AS user_id, u.username, u.display_name, u.private, m.tier, m.sim FROM ("
    "  SELECT c.id, c.username, CASE WHEN c.username = $1 THEN 3 WHEN c.username LIKE $2 THEN 2 "
    "         ELSE 1 END AS tier, similarity(c.username, $1) AS sim"
    "  FROM ({names}) c ORDER BY tier DESC, sim DESC, c.username LIMIT $3"
    ") m JOIN search_users u ON u.id = m.id "
    "ORDER BY m.tier DESC, m.sim DESC, m.username"
)
_PREFIXED = "SELECT n.id, n.username FROM search_users n WHERE n.username LIKE $2"
# The exact and prefix matches only (an index-only scan of the prefix index
# when its pages are all-visible): when they fill the page, no fuzzy match (a
# lower tier) could be on it, and the trigram search is skipped.
USERS_PREFIX_SQL = _TIERED.format(names=_PREFIXED)
# Else the prefix matches (fewer than a page) and the page's most similar
# names, nearest first from the GiST trigram index (`<->` is 1 - similarity):
# it stops after `limit` names where the GIN index had every name above the
# threshold checked in the table.
USERS_SQL = _TIERED.format(
    names=f"({_PREFIXED}) UNION (SELECT n.id, n.username FROM search_users n "
    "WHERE n.username % $1 "
    "ORDER BY n.username <-> $1 LIMIT $3)"
)
# $1 tags: their photo counts in this database's index (summed over the
# sources it holds counts of)
TAG_COUNTS_SQL = (
    "SELECT tag, sum(photo_count)::bigint AS photo_count FROM search_tags "
    "WHERE tag = ANY($1::text[]) GROUP BY tag"
)
# $1 tag, $2 LIKE prefix, $3 limit: exact, then prefix, then fuzzy (pg_trgm)
# matches, each tier by popularity.
TAGS_SQL = (
    "SELECT tag, photo_count, tier FROM ("
    "  SELECT t.tag, sum(t.photo_count)::bigint AS photo_count, "
    "         CASE WHEN t.tag = $1 THEN 3 WHEN t.tag LIKE $2 THEN 2 ELSE 1 END AS tier"
    "  FROM search_tags t WHERE t.tag LIKE $2 OR t.tag % $1 GROUP BY t.tag"
    ") m ORDER BY tier DESC, photo_count DESC, tag LIMIT $3"
)
# Photos by caption, from the search index (`search_photos`): the newest
# matches the viewer may see are the candidates, ranked by `ts_rank` among
# themselves. The privacy rule is applied to the index's copy of what it
# needs (a narrow scan), then again to the photo and owner as they are now,
# so an index behind a privacy change or a delete hides, never shows.
INDEX_VISIBLE = photo_visible("$1", photo="s", private="s.private")
_CANDIDATES = (
    "SELECT s.id, ts_rank(s.tsv, to_tsquery('simple', $2)) AS rank FROM {source} "
    f"WHERE s.tsv @@ to_tsquery('simple', $2) AND {INDEX_VISIBLE} "
    "ORDER BY s.id DESC LIMIT $4"
)
_RANKED = (
    f"SELECT {PHOTO_COLUMNS}, c.rank FROM ({{candidates}}) c "
    "JOIN photos p ON p.id = c.id "
    f"WHERE {VISIBLE} ORDER BY c.rank DESC, p.id DESC LIMIT $3"
)
# $1 viewer, $2 tsquery, $3 limit, $4 candidates, $5 window: the candidates
# among the newest `window` index rows (walked newest first, stopping at the
# `candidates`th match: a very common word reads a few hundred rows).
RECENT_PHOTOS_SQL = _RANKED.format(
    candidates=_CANDIDATES.format(
        source="(SELECT * FROM search_photos ORDER BY id DESC LIMIT $5) s"
    )
)
# $1 viewer, $2 tsquery, $3 limit, $4 candidates: the candidates among all
# matches, through the GIN index (asked when the window had too few: then the
# word is rare, about `limit` per `window` rows or fewer, so its matches are few).
ALL_PHOTOS_SQL = _RANKED.format(
    candidates=(
        "WITH m AS MATERIALIZED (SELECT s.id, s.tsv FROM search_photos s "
        f"WHERE s.tsv @@ to_tsquery('simple', $2) AND {INDEX_VISIBLE}) "
        "SELECT m.id, ts_rank(m.tsv, to_tsquery('simple', $2)) AS rank FROM m "
        "ORDER BY m.id DESC LIMIT $4"
    )
)

# The index in a database of its own: no `photos`, `users` or `follows` there.
# The candidates (id, rank) by the index's copy of the rule, the viewer's
# followees passed in: $1 viewer, $2 tsquery, $3 candidates, then $4 window
# and $5 followees (recent), or $4 followees (all).
_APART = (
    "SELECT s.id, ts_rank(s.tsv, to_tsquery('simple', $2)) AS rank FROM {source} "
    "WHERE s.tsv @@ to_tsquery('simple', $2) AND {visible} ORDER BY s.id DESC LIMIT $3"
)
RECENT_CANDIDATES_SQL = _APART.format(
    source="(SELECT * FROM search_photos ORDER BY id DESC LIMIT $4) s",
    visible=photo_visible(
        "$1", photo="s", private="s.private", follows="s.owner_id IN (SELECT unnest($5::bigint[]))"
    ),
)
ALL_CANDIDATES_SQL = _APART.format(
    source="search_photos s",
    visible=photo_visible(
        "$1", photo="s", private="s.private", follows="s.owner_id IN (SELECT unnest($4::bigint[]))"
    ),
)
# $1 viewer, $2 photo ids: those the viewer may see, as they are (on the
# photos' own shard).
VISIBLE_BY_IDS_SQL = (
    f"SELECT {PHOTO_COLUMNS} FROM photos p WHERE p.id = ANY($2::bigint[]) AND {VISIBLE}"
)


# How results of several shards merge: each shard ranks its own the same way,
# and these keys sort the union into the order one database would give.
UserKey = tuple[int, float, str]


class TagHit(NamedTuple):
    tag: str
    photo_count: int
    tier: int


PhotoKey = tuple[float, int]


async def users(conn: Connection, query: str, *, limit: int) -> list[tuple[UserKey, UserListEntry]]:
    """Exact, then prefix, then fuzzy (pg_trgm) matches on the username, each
    with its sort key (ascending: best first)."""
    rows = await conn.fetch(USERS_PREFIX_SQL, query, like_prefix(query), limit)
    if len(rows) < limit:
        rows = await conn.fetch(USERS_SQL, query, like_prefix(query), limit)
    return [
        ((-int(r["tier"]), -float(r["sim"]), str(r["username"])), UserListEntry.from_row(r))
        for r in rows
    ]


async def tags(conn: Connection, tag: str, *, limit: int) -> list[TagHit]:
    """Exact, then prefix, then fuzzy matches of the tag, best first: each
    with its tier (3 exact, 2 prefix, 1 fuzzy) and its count here."""
    rows = await conn.fetch(TAGS_SQL, tag, like_prefix(tag), limit)
    return [TagHit(str(r["tag"]), int(r["photo_count"]), int(r["tier"])) for r in rows]


async def tag_counts(conn: Connection, tags: list[str]) -> dict[str, int]:
    """Photo counts on this database of exactly these tags."""
    rows = await conn.fetch(TAG_COUNTS_SQL, tags)
    return {str(r["tag"]): int(r["photo_count"]) for r in rows}


async def photos(
    conn: Connection,
    tsquery: str,
    *,
    viewer_id: int | None,
    limit: int,
    candidates: int,
    window: int,
    likes_here: bool = True,
) -> list[tuple[PhotoKey, PhotoRecord]]:
    """Photos whose caption matches, best first among the newest `candidates`
    matches; only those the viewer may see; each with its sort key
    (ascending: best first). The newest `window` photos are tried first.
    `likes_here`: whether this database holds likes (liked_by_me asked here)."""
    recent = photos_repo.list_sql(RECENT_PHOTOS_SQL, likes_here)
    rows = await conn.fetch(recent, viewer_id, tsquery, limit, candidates, window)
    if len(rows) < limit:
        every = photos_repo.list_sql(ALL_PHOTOS_SQL, likes_here)
        rows = await conn.fetch(every, viewer_id, tsquery, limit, candidates)
    return [((-float(r["rank"]), -int(r["id"])), PhotoRecord.from_row(r)) for r in rows]


async def candidates(
    conn: Connection,
    tsquery: str,
    *,
    viewer_id: int | None,
    followees: list[int],
    limit: int,
    candidates: int,
    window: int,
) -> list[tuple[int, float]]:
    """The index apart: the newest `candidates` matches the index says the
    viewer may see (id, rank), newest first; the newest `window` rows tried
    first, as `photos` does."""
    rows = await conn.fetch(
        RECENT_CANDIDATES_SQL, viewer_id, tsquery, candidates, window, followees
    )
    if len(rows) < limit:
        rows = await conn.fetch(ALL_CANDIDATES_SQL, viewer_id, tsquery, candidates, followees)
    return [(int(r["id"]), float(r["rank"])) for r in rows]


async def visible_photos(
    conn: Connection,
    photo_ids: list[int],
    viewer_id: int | None,
    *,
    likes_here: bool = True,
    followees: Sequence[int] | None = None,
) -> list[PhotoRecord]:
    """Of these photos (on this database), those the viewer may see, as they
    now are. `followees`: see `photos_repo.with_followees`."""
    sql, args = photos_repo.with_followees(
        photos_repo.list_sql(VISIBLE_BY_IDS_SQL, likes_here), [viewer_id, photo_ids], followees
    )
    rows = await conn.fetch(sql, *args)
    return [PhotoRecord.from_row(r) for r in rows]


def like_prefix(text: str) -> str:
    # LIKE's own wildcards in the user's text are literals.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

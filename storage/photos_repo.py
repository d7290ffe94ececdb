"""SQL for photos. Every read takes the viewer as `$1` and applies the privacy
rule (picshare/privacy.py, in SQL from storage/visibility.py), so no list,
page or search can forget it. Lists are
keyset-paginated on the time-ordered id: pages never skip or repeat a photo
while new ones arrive (they only appear at the head)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

from storage.db import Connection, sql_literal
from storage.ids import shard_of
from storage.records import ModerationState, PhotoRecord, PhotoStatus
from storage.social_repo import follows_sql
from storage.visibility import PUBLIC, VISIBLE, followees_given

# Whether the viewer ($1) likes the photo, asked beside it: only where likes
# live with their photos (`Shards.likes` is None). Where they have a database
# of their own a list says false here and the service asks that database for
# the page in one query (picshare/likes.py, `mark`); `$1` stays typed, so the
# statement's parameters are the same either way.
_LIKED_HERE = "EXISTS (SELECT 1 FROM likes l WHERE l.photo_id = p.id AND l.user_id = $1)"
_LIKED_ELSEWHERE = "($1::bigint IS NULL AND false)"
_COLUMNS = (
    "p.id, p.owner_id, p.owner_username, p.owner_display_name, p.owner_private, "
    "p.caption, p.tags, "
    "p.status, p.mime, p.width, p.height, p.bytes, p.blurhash, p.upload_key, p.original_key, "
    "p.large_key, p.medium_key, p.thumb_key, p.like_count, p.comment_count, p.created_at, "
    f"{_LIKED_HERE} AS liked_by_me "
)
# The owner's fields are the photo's own copies (migration 0019): no photo
# read joins `users`, so the photos may live in a database of their own.
_SELECT = f"SELECT {_COLUMNS} FROM photos p "
# One photo by id never says liked_by_me (false): its readers either need
# no viewer's flag (checks, jobs, the cache) or ask for it apart
# (picshare/photos.py, `get`), so it reads no likes wherever they live.
_SELECT_ONE = _SELECT.replace(_LIKED_HERE, _LIKED_ELSEWHERE)


@functools.cache
def _likes_apart(sql: str) -> str:
    """A list's statement where likes are not beside the photos."""
    return sql.replace(_LIKED_HERE, _LIKED_ELSEWHERE)


def list_sql(sql: str, likes_here: bool) -> str:
    """A photo list's statement as it runs: asking liked_by_me beside the
    photos, or not where likes have a database of their own (for any query
    built on `_COLUMNS`, search's too)."""
    return sql if likes_here else _likes_apart(sql)


def with_followees(
    sql: str, args: list[object], followees: Sequence[int] | None
) -> tuple[str, list[object]]:
    """A statement and its arguments as they run: the privacy rule reading
    `follows` beside the photos (`followees` None), or given the viewer's
    followees as one more parameter (storage/visibility.py, `followees_given`)."""
    if followees is None:
        return sql, args
    return followees_given(sql, len(args) + 1), [*args, list(followees)]


_READY = sql_literal(PhotoStatus.READY)
_PROCESSING = sql_literal(PhotoStatus.PROCESSING)
_FAILED = sql_literal(PhotoStatus.FAILED)
_REJECTED = sql_literal(PhotoStatus.REJECTED)

# 2^63 - 1: "no cursor yet" without a second query text.
_MAX_ID = 9_223_372_036_854_775_807

# The list queries, as constants so the benchmarks can EXPLAIN exactly these.
# $1 viewer, $2 before, $3 limit
PUBLIC_SQL = _SELECT + f"WHERE {PUBLIC} AND p.id < $2 ORDER BY p.id DESC LIMIT $3"
# $1 viewer, $2 tag, $3 before, $4 limit
TAGGED_SQL = (
    _SELECT + f"WHERE p.tags @> ARRAY[$2::text] AND p.id < $3 AND {VISIBLE} "
    "ORDER BY p.id DESC LIMIT $4"
)
# $1 viewer, $2 owner, $3 before, $4 limit, $5 tag or NULL
BY_OWNER_SQL = (
    _SELECT + f"WHERE p.owner_id = $2 AND p.id < $3 AND {VISIBLE} "
    "AND ($5::text IS NULL OR p.tags @> ARRAY[$5::text]) "
    "ORDER BY p.id DESC LIMIT $4"
)
# The home feed shows ready photos of the viewer and of accounts they follow:
# all visible to them by the privacy rule, which these two plans therefore
# need not repeat (and must not: it would cost them their index plans).
# $1 viewer, $2 before, $3 limit. For viewers who follow many accounts: walk
# the newest ready photos (photos_ready_id, backwards) and keep those of
# followees. With 1,000 followees among 20k users it reads ~500 index
# entries for a page; with few followees it could read the whole table.
HOME_FEED_DENSE_SQL = (
    _SELECT + f"WHERE p.status = {_READY} AND p.id < $2 AND (p.owner_id = $1 OR p.owner_id IN "
    "(SELECT followee_id FROM follows WHERE follower_id = $1)) ORDER BY p.id DESC LIMIT $3"
)
# $1 viewer, $2 before, $3 limit. For everyone else: per followee, its newest
# photos from (owner_id, id DESC), then the newest of those; cost grows with
# the number of followees, not with the table.
HOME_FEED_SQL = (
    f"SELECT {_COLUMNS} FROM ("
    "  SELECT $1::bigint AS owner_id"
    "  UNION ALL SELECT followee_id FROM follows WHERE follower_id = $1"
    ") o CROSS JOIN LATERAL ("
    f"  SELECT * FROM photos q WHERE q.owner_id = o.owner_id AND q.status = {_READY}"
    "  AND q.id < $2 ORDER BY q.id DESC LIMIT $3"
    ") p ORDER BY p.id DESC LIMIT $3"
)

# The home feed across shards: the viewer's followees come from the viewer's
# shard; each shard is asked for those it holds ($4), with the same two plans.
# $1 viewer, $2 before, $3 limit, $4 owners
FEED_OF_OWNERS_DENSE_SQL = (
    _SELECT + f"WHERE p.status = {_READY} AND p.id < $2 AND p.owner_id = ANY($4::bigint[]) "
    "ORDER BY p.id DESC LIMIT $3"
)
FEED_OF_OWNERS_SQL = (
    f"SELECT {_COLUMNS} FROM unnest($4::bigint[]) o (owner_id) CROSS JOIN LATERAL ("
    f"  SELECT * FROM photos q WHERE q.owner_id = o.owner_id AND q.status = {_READY}"
    "  AND q.id < $2 ORDER BY q.id DESC LIMIT $3"
    ") p ORDER BY p.id DESC LIMIT $3"
)


class OwnerFields(NamedTuple):
    """The owner's copies a photo carries (migration 0019)."""

    username: str
    display_name: str
    private: bool


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
    moderated: bool = False,
    owner: OwnerFields | None = None,
) -> int:
    """`moderated`: it waits for a moderation verdict as well as its renditions.

    `owner`: None where the owner's row shares this database (the default):
    the database copies the owner's fields under the owner's row lock
    (migration 0019) and the owner's photo_count moves here. Given where the
    photos live apart from their owners: the fields as given, and the count
    is the caller's (a job: picshare/photos.py)."""
    # The owner's logical shard in the id: the photo lives with its owner, and
    # its id alone leads there (storage/shards.py, `of_id`).
    photo_id = await conn.fetchval(
        "INSERT INTO photos (id, owner_id, caption, tags, mime, width, height, bytes, upload_key, "
        "moderation, owner_username, owner_display_name, owner_private) "
        "VALUES (picshare_next_id($9), $1, $2, $3, $4, $5, $6, $7, $8, $10, $11, $12, $13) "
        "RETURNING id",
        owner_id,
        caption,
        tags,
        mime,
        width,
        height,
        size,
        upload_key,
        shard_of(owner_id),
        ModerationState.PENDING if moderated else ModerationState.NONE,
        *(owner or (None, None, None)),
    )
    if owner is None:
        await conn.execute("UPDATE users SET photo_count = photo_count + 1 WHERE id = $1", owner_id)
    if tags:
        await conn.execute(
            "INSERT INTO tags (tag, photo_count) SELECT unnest($1::text[]), 1 "
            "ON CONFLICT (tag) DO UPDATE SET photo_count = tags.photo_count + 1",
            sorted(tags),  # one order: concurrent uploads never deadlock on tag rows
        )
    return int(photo_id)


_FOR_SQL = _SELECT_ONE + f"WHERE p.id = $2 AND {VISIBLE}"


async def photo_for(
    conn: Connection,
    photo_id: int,
    viewer_id: int | None,
    *,
    followees: Sequence[int] | None = None,
) -> PhotoRecord | None:
    """The photo if this viewer may see it, else None (so callers answer 404).
    `followees`: see `with_followees`."""
    sql, args = with_followees(_FOR_SQL, [viewer_id, photo_id], followees)
    row = await conn.fetchrow(sql, *args)
    return None if row is None else PhotoRecord.from_row(row)


async def photo_by_id(conn: Connection, photo_id: int) -> PhotoRecord | None:
    """The photo whoever asks (jobs, ownership checks)."""
    row = await conn.fetchrow(_SELECT_ONE + "WHERE p.id = $2", None, photo_id)
    return None if row is None else PhotoRecord.from_row(row)


# $1 viewer (or NULL), $2 photo: what a photo's detail needs when its cache
# entry is missing, all from the photo's shard (the owner, the viewer's like
# and the owner's side of a follow live there too).
_FOLLOWS_HERE = follows_sql("$1", "p.owner_id")
_SEEN_BY_SQL = f"SELECT {_COLUMNS}, {_FOLLOWS_HERE} AS follows FROM photos p WHERE p.id = $2"
# Where the photos have a database of their own (`Shards.photos`), no
# `follows` is there: the caller asks the owner's database.
_SEEN_APART_SQL = _SEEN_BY_SQL.replace(_FOLLOWS_HERE, "($1::bigint IS NULL AND false)")


async def photo_seen_by(
    conn: Connection,
    photo_id: int,
    viewer_id: int | None,
    *,
    likes_here: bool = True,
    follows_here: bool = True,
) -> tuple[PhotoRecord, bool] | None:
    """The photo whoever asks (its `liked_by_me` the viewer's where likes are
    here, else false), and whether the viewer follows its owner (false where
    follows are not here): one round trip, for the privacy rule to decide on."""
    sql = _SEEN_BY_SQL if follows_here else _SEEN_APART_SQL
    row = await conn.fetchrow(list_sql(sql, likes_here), viewer_id, photo_id)
    return None if row is None else (PhotoRecord.from_row(row), bool(row["follows"]))


async def list_public(
    conn: Connection,
    *,
    viewer_id: int | None,
    before: int | None,
    limit: int,
    likes_here: bool = True,
) -> list[PhotoRecord]:
    """Newest photos that everyone may see (ready, of public accounts).
    `likes_here`: liked_by_me is asked beside them (see `_LIKED_HERE`)."""
    rows = await conn.fetch(
        list_sql(PUBLIC_SQL, likes_here),
        viewer_id,
        before or _MAX_ID,
        limit,
    )
    return [PhotoRecord.from_row(r) for r in rows]


async def list_tagged(
    conn: Connection,
    *,
    viewer_id: int | None,
    tag: str,
    before: int | None,
    limit: int,
    likes_here: bool = True,
    followees: Sequence[int] | None = None,
) -> list[PhotoRecord]:
    """Photos with a tag that this viewer may see, newest first.
    `followees`: see `with_followees`."""
    if "\x00" in tag:
        return []  # no stored tag can hold NUL
    sql, args = with_followees(
        list_sql(TAGGED_SQL, likes_here), [viewer_id, tag, before or _MAX_ID, limit], followees
    )
    rows = await conn.fetch(sql, *args)
    return [PhotoRecord.from_row(r) for r in rows]


async def list_by_owner(
    conn: Connection,
    *,
    viewer_id: int | None,
    owner_id: int,
    before: int | None,
    limit: int,
    tag: str | None = None,
    likes_here: bool = True,
    followees: Sequence[int] | None = None,
) -> list[PhotoRecord]:
    """`followees`: see `with_followees` (here only whether they hold the owner matters)."""
    sql, args = with_followees(
        list_sql(BY_OWNER_SQL, likes_here),
        [viewer_id, owner_id, before or _MAX_ID, limit, tag],
        followees,
    )
    rows = await conn.fetch(sql, *args)
    return [PhotoRecord.from_row(r) for r in rows]


async def home_feed(
    conn: Connection,
    *,
    viewer_id: int,
    before: int | None,
    limit: int,
    dense: bool,
    likes_here: bool = True,
) -> list[PhotoRecord]:
    """Ready photos of the viewer and of everyone they follow, newest first.

    Fan-out on read: for each followed account (and the viewer), take at most
    `limit` of its newest photos below the cursor from the (owner_id, id DESC)
    index, then keep the newest `limit` of those. The work is bounded by
    followees x limit index probes, whatever the table's size.
    """
    rows = await conn.fetch(
        list_sql(HOME_FEED_DENSE_SQL if dense else HOME_FEED_SQL, likes_here),
        viewer_id,
        before or _MAX_ID,
        limit,
    )
    return [PhotoRecord.from_row(r) for r in rows]


async def feed_of(
    conn: Connection,
    *,
    viewer_id: int,
    owners: list[int],
    before: int | None,
    limit: int,
    dense: bool,
    likes_here: bool = True,
) -> list[PhotoRecord]:
    """Ready photos of `owners` (the viewer and followees this database holds),
    newest first: `home_feed` with the owners given instead of read here."""
    rows = await conn.fetch(
        list_sql(FEED_OF_OWNERS_DENSE_SQL if dense else FEED_OF_OWNERS_SQL, likes_here),
        viewer_id,
        before or _MAX_ID,
        limit,
        owners,
    )
    return [PhotoRecord.from_row(r) for r in rows]


async def delete_photo(conn: Connection, photo: PhotoRecord, *, owner_here: bool = True) -> bool:
    """Delete the row; fix the tags' counts, and the owner's where the owner
    lives here (`owner_here`; else the caller's job does), in the same transaction."""
    deleted = await conn.execute("DELETE FROM photos WHERE id = $1", photo.id)
    if deleted != "DELETE 1":
        return False
    if owner_here:
        await conn.execute(
            "UPDATE users SET photo_count = photo_count - 1 WHERE id = $1", photo.owner_id
        )
    if photo.tags:
        await conn.execute(
            "UPDATE tags SET photo_count = photo_count - 1 WHERE tag = ANY($1::text[])",
            sorted(photo.tags),
        )
    return True


# The photo's denormalized counts of rows of other groups (likes, comments).
LIKE_COUNT = "like_count"
COMMENT_COUNT = "comment_count"
_COUNTS = frozenset({LIKE_COUNT, COMMENT_COUNT})


async def count(conn: Connection, photo_id: int, column: str, delta: int) -> int | None:
    """Move one of the photo's counts (`LIKE_COUNT`, `COMMENT_COUNT`) by
    `delta` (0: just read it); the count after, or None if there is no such
    photo or it would go below zero (a row's removal applied before its
    addition, by jobs: picshare/likes.py retries)."""
    if column not in _COUNTS:
        raise ValueError(f"no photo count {column!r}")
    if delta == 0:
        found = await conn.fetchval(f"SELECT {column} FROM photos WHERE id = $1", photo_id)
    else:
        found = await conn.fetchval(
            f"UPDATE photos SET {column} = {column} + $2 "
            f"WHERE id = $1 AND {column} + $2 >= 0 RETURNING {column}",
            photo_id,
            delta,
        )
    return None if found is None else int(found)


async def set_owner_fields(conn: Connection, owner_id: int, owner: OwnerFields) -> int:
    """The owner's photos here take these copies (where the photos live apart
    from their owner: a job's, picshare/photo_access.py); how many changed."""
    result = await conn.execute(
        "UPDATE photos SET owner_username = $2, owner_display_name = $3, owner_private = $4 "
        "WHERE owner_id = $1 AND (owner_username, owner_display_name, owner_private) "
        "IS DISTINCT FROM ($2, $3, $4)",
        owner_id,
        *owner,
    )
    return int(result.split()[-1])


async def hide_owner(conn: Connection, owner_id: int) -> None:
    """The owner's photos here say "private" (before the account itself does:
    picshare/photo_access.py, `hide_owner`)."""
    await conn.execute(
        "UPDATE photos SET owner_private = true WHERE owner_id = $1 AND NOT owner_private",
        owner_id,
    )


async def lock_owner(conn: Connection, owner_id: int) -> None:
    """Where the owner's row shares the photos' database: lock it before any
    of their photos' rows. A change of the owner's name or privacy locks the
    owner, then rewrites their photos (its trigger, migration 0019); a
    deletion that locked the photo first and the owner after (its
    photo_count) could deadlock with it."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", owner_id)


async def lock_photo(conn: Connection, photo_id: int) -> PhotoRecord | None:
    row = await conn.fetchrow("SELECT id FROM photos WHERE id = $1 FOR UPDATE", photo_id)
    return None if row is None else await photo_by_id(conn, photo_id)


# When a photo is shown: its renditions are recorded, and moderation asked
# nothing or approved it. Renditions (`mark_ready`) and verdicts
# (`set_verdict`) each write their own part and evaluate that rule on the row
# they update, in the same UPDATE: the row lock serializes them and the later
# one re-reads the earlier one's commit, so whichever finishes last makes the
# photo ready, exactly once (`announce_ready`).


async def mark_ready(
    conn: Connection,
    photo_id: int,
    *,
    keys: dict[str, str],
    width: int,
    height: int,
    blurhash: str,
) -> PhotoStatus | None:
    """Record the renditions, and make the photo `ready` if moderation (if
    any) approved it already. Its status after, or None if it was deleted
    meanwhile or already has renditions (a repeat). A rejected photo is
    rendered too: its owner still sees it."""
    status = await conn.fetchval(
        "UPDATE photos SET original_key = $2, large_key = $3, "
        "medium_key = $4, thumb_key = $5, width = $6, height = $7, blurhash = $8, "
        f"status = CASE WHEN status = {_PROCESSING} AND moderation IN ('none', 'approved') "
        f"THEN {_READY} ELSE status END, updated_at = now() "
        f"WHERE id = $1 AND large_key IS NULL AND status IN ({_PROCESSING}, {_REJECTED}) "
        "RETURNING status",
        photo_id,
        keys["original"],
        keys["large"],
        keys["medium"],
        keys["thumb"],
        width,
        height,
        blurhash,
    )
    return None if status is None else PhotoStatus(status)


async def set_verdict(conn: Connection, photo_id: int, verdict: ModerationState) -> bool:
    """Record a moderation verdict (approved or rejected; the latest wins):
    a rejection takes the photo out of sight (`rejected`), an approval shows
    it when its renditions exist (else it waits for them, `processing`). A
    photo that failed to render stays failed. False if there is no such photo."""
    result = await conn.execute(
        "UPDATE photos SET moderation = $2, "
        f"status = CASE WHEN status = {_FAILED} THEN status "
        f"WHEN $2 = 'rejected' THEN {_REJECTED} "
        f"WHEN $2 = 'approved' AND large_key IS NOT NULL THEN {_READY} "
        f"ELSE {_PROCESSING} END, updated_at = now() WHERE id = $1",
        photo_id,
        verdict,
    )
    return bool(result == "UPDATE 1")


async def announce_ready(conn: Connection, photo_id: int) -> bool:
    """True once per photo: the first time it is `ready` (the caller writes
    `photo.ready` in the same transaction). Call after any update that may
    have made it ready, in the transaction that holds its row lock."""
    result = await conn.execute(
        "UPDATE photos SET ready_announced = true "
        f"WHERE id = $1 AND status = {_READY} AND NOT ready_announced",
        photo_id,
    )
    return bool(result == "UPDATE 1")


async def moderation_of(conn: Connection, photo_id: int) -> ModerationState | None:
    """Where the photo stands with moderation; None if there is no such photo."""
    value = await conn.fetchval("SELECT moderation FROM photos WHERE id = $1", photo_id)
    return None if value is None else ModerationState(value)


async def set_original(conn: Connection, photo_id: int, key: str) -> bool:
    """Point a photo at its metadata-free original; False if it was deleted meanwhile."""
    result = await conn.execute(
        "UPDATE photos SET original_key = $2, updated_at = now() WHERE id = $1", photo_id, key
    )
    return bool(result == "UPDATE 1")


async def mark_failed(conn: Connection, photo_id: int) -> None:
    await conn.execute(
        f"UPDATE photos SET status = {_FAILED}, updated_at = now() "
        f"WHERE id = $1 AND status = {_PROCESSING}",
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


async def key_is_public(conn: Connection, key: str) -> bool:
    """Does a photo that everyone may see use this rendition?"""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM photos p "
            f"WHERE {PUBLIC} AND (p.original_key = $1 "
            "OR p.large_key = $1 OR p.medium_key = $1 OR p.thumb_key = $1))",
            key,
        )
    )


async def lock_blob_key(conn: Connection, key: str) -> None:
    """Serialize, per key, "a row now uses this blob" against "delete this unused blob".

    Held to the end of the transaction: an upload that stores a blob and
    inserts its row, and a collector that checks references and deletes the
    file, take the same lock, so the collector never removes a file a row is
    about to use. A key names no shard (photos on any shard may share its
    bytes): with shards the lock is taken in the catalog, for every shard
    alike (picshare/photos.py, `_blob_keys_locked`).
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", key)

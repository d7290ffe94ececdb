"""Moving one logical shard to another database while the site keeps serving
(`run.py shards move LOGICAL TARGET`; README, "Moving a logical shard").

Copy plus catch-up, chosen over PostgreSQL logical replication: a row filter
would have to compute the shard bits of an ID (publications only filter on
plain column expressions per table, and a follow row belongs with either of
two users), replication needs `wal_level = logical` and a subscription's
slot on every shard, and the catch-up of one logical shard (about 1/1024 of a
database under the hash router) takes milliseconds. The steps:

1. copy: every row of the logical shard is upserted from the source to the
   target, table by table, in batches (progress shown), while writes go on;
2. fence: the source refuses writes to that logical shard's rows (a row
   trigger and `shard_fences`; SQLSTATE PS001, answered 503 + Retry-After),
   and only those: every other logical shard keeps writing;
3. catch up: the copy again, now exact (rows deleted meanwhile pruned), with
   nothing changing under it; the pause is this step;
4. switch: the map in the catalog points the logical shard at the target
   (processes reload it within `database.shard_map_poll` seconds);
5. clean up: after a grace period the source's rows are deleted, the fence
   lifted, the tag counts of both recomputed.

Where a move stands is kept in the catalog (`shard_moves`): interrupted at
any point and run again, it goes on from there; every step is idempotent
(upserts, pruning against the source, deletes of what the target holds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from storage.db import Connection
from storage.router import PRIMARY, Databases
from storage.shard_map import save_move
from storage.shards import Shards

BATCH = 5_000
# Serializes fences on one database (two moves off it at once).
FENCE_LOCK = 0x5049_4353_4645_4E43 & 0x7FFF_FFFF_FFFF_FFFF
# A trigger's table lock is waited for this long at a time, then tried again.
DDL_LOCK_WAIT_MS = 200
DDL_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class MovedTable:
    """A table whose rows live with a user: `owners` are the columns whose IDs
    name the logical shard a row belongs with (a follow has two)."""

    name: str
    owners: tuple[str, ...]


# Parents first, so the foreign keys within a user's data hold at every step.
MOVED_TABLES = (
    MovedTable("users", ("id",)),
    # The search index rows of those users (picshare/search_index.py).
    MovedTable("search_users", ("id",)),
    MovedTable("auth_tokens", ("user_id",)),
    MovedTable("idempotency_keys", ("user_id",)),
    MovedTable("photos", ("id",)),
    # The search index rows of those photos (picshare/search_index.py).
    MovedTable("search_photos", ("id",)),
    MovedTable("likes", ("photo_id",)),
    MovedTable("comments", ("photo_id",)),
    MovedTable("notifications", ("user_id",)),
    MovedTable("follows", ("follower_id", "followee_id")),
    MovedTable("follow_requests", ("requester_id", "target_id")),
    # A user's webhooks: their ids carry the user's logical shard. Pending
    # delivery jobs stay in the source's job table and find their message
    # where the map then names (picshare/webhooks.py reads by endpoint id).
    MovedTable("webhook_endpoints", ("id",)),
    MovedTable("webhook_messages", ("endpoint_id",)),
    MovedTable("webhook_deliveries", ("endpoint_id",)),
)


class MoveError(Exception):
    """A move that cannot be made as asked (bad shard numbers)."""


@dataclass(slots=True)
class MoveReport:
    logical: int
    source: str
    target: str
    rows: int = 0
    pause_seconds: float = 0.0
    seconds: float = 0.0
    resumed_from: str = ""


Progress = Callable[[str, int], None]


def _bits(column: str, alias: str) -> str:
    return f'(({alias}"{column}" >> 10) & 8191)'


def _belongs(table: MovedTable, alias: str = "") -> str:
    """SQL: the row belongs with logical shard $1 as far as a database holding
    logical shards $2 is concerned. A row with two owners (a follow) is the
    moved shard's unless its other owner already lives on that database, whose
    own row is then the truth (copying the source's mirror over it could undo
    a newer change there)."""
    a = f"{alias}." if alias else ""
    if len(table.owners) == 1:
        return f"{_bits(table.owners[0], a)} = $1"
    parts = []
    for column in table.owners:
        others = [o for o in table.owners if o != column]
        free = " AND ".join(
            f"({_bits(o, a)} = $1 OR {_bits(o, a)} <> ALL($2::int[]))" for o in others
        )
        parts.append(f"({_bits(column, a)} = $1 AND {free})")
    return "(" + " OR ".join(parts) + ")"


# Types that travel as text: asyncpg's binary COPY has no codec for them.
AS_TEXT = ("json", "jsonb", "tsvector")


async def _columns(conn: Connection, table: str) -> tuple[list[str], list[str], dict[str, str]]:
    """Its columns that can be written (not generated), its primary key, and
    its columns of AS_TEXT types, with their type (cast back on arrival)."""
    found = await conn.fetch(
        "SELECT attname, format_type(atttypid, NULL) AS type FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped "
        "AND attgenerated = '' ORDER BY attnum",
        table,
    )
    columns = [r["attname"] for r in found]
    textual = {r["attname"]: r["type"] for r in found if r["type"] in AS_TEXT}
    key = [
        r[0]
        for r in await conn.fetch(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary",
            table,
        )
    ]
    return columns, key, textual


async def sync_table(
    source: Connection,
    target: Connection,
    table: MovedTable,
    logical: int,
    on_target: Sequence[int],
    *,
    prune: bool,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Make the target's rows of `logical` in `table` those of the source
    (upserted; with `prune`, the target's others deleted). The source is read
    in the caller's snapshot (`_copy`: one for every table); the target
    written in one transaction."""
    columns, key, textual = await _columns(source, table.name)
    names = ", ".join(f'"{c}"' for c in columns)
    as_text = ", ".join(f'"{c}"::text AS "{c}"' if c in textual else f'"{c}"' for c in columns)
    # The type names come from pg_attribute and AS_TEXT, never from input.
    typed = ", ".join(f'"{c}"::{textual[c]}' if c in textual else f'"{c}"' for c in columns)
    where = _belongs(table)
    args = (logical, list(on_target))
    copied = 0
    async with target.transaction():
        await target.execute(
            f"CREATE TEMP TABLE move_stage ON COMMIT DROP AS "
            f"SELECT {as_text} FROM {table.name} WITH NO DATA"
        )
        cursor = await source.cursor(
            f"SELECT {as_text} FROM {table.name} WHERE {where}", *_used(where, args)
        )
        while rows := await cursor.fetch(BATCH):
            await target.copy_records_to_table(
                "move_stage", records=[tuple(r) for r in rows], columns=columns
            )
            copied += len(rows)
            if progress is not None:
                progress(len(rows))
        changing = [c for c in columns if c not in key]
        conflict = ", ".join(f'"{c}"' for c in key)
        action = (
            "DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in changing)
            if changing
            else "DO NOTHING"
        )
        await target.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {typed} FROM move_stage "
            f"ON CONFLICT ({conflict}) {action}"
        )
        if prune:
            same = " AND ".join(f's."{c}" = t."{c}"' for c in key)
            await target.execute(
                f"DELETE FROM {table.name} t WHERE {_belongs(table, 't')} "
                f"AND NOT EXISTS (SELECT 1 FROM move_stage s WHERE {same})",
                *_used(where, args),
            )
    return copied


async def tables_here(conn: Connection) -> list[MovedTable]:
    """The moved tables this database has, in order: a table group with a
    database of its own (notifications, say) has no table on the shards
    made after it moved out, and nothing of it to move."""
    found = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
            "AND relnamespace = 'public'::regnamespace AND relname = ANY($1::text[])",
            [t.name for t in MOVED_TABLES],
        )
    }
    return [t for t in MOVED_TABLES if t.name in found]


def _used(where: str, args: tuple[int, list[int]]) -> tuple[object, ...]:
    # A single-owner predicate has no $2: asyncpg refuses unused arguments.
    return args if "$2" in where else args[:1]


async def count_rows(db: Databases, logical: int, on_target: Sequence[int]) -> int:
    """How many rows the move of `logical` copies from `db` (for the progress bar)."""
    total = 0
    async with db.read(PRIMARY) as conn:
        for table in await tables_here(conn):
            where = _belongs(table)
            total += await conn.fetchval(
                f"SELECT count(*) FROM {table.name} WHERE {where}",
                *_used(where, (logical, list(on_target))),
            )
    return total


async def fence(db: Databases, logical: int) -> None:
    """Refuse writes to `logical`'s rows on `db` from now on (idempotent).

    The triggers are made after the fence row is committed: creating one waits
    for the table's running writers, so once this returns, every write to the
    shard's rows either committed before (and the catch-up copies it) or fails."""
    async with db.write() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", FENCE_LOCK)
        try:
            await conn.execute(
                "INSERT INTO shard_fences (logical) VALUES ($1) ON CONFLICT DO NOTHING", logical
            )
            for table in await tables_here(conn):
                owners = ", ".join(f"'{o}'" for o in table.owners)
                await _ddl(
                    conn,
                    f"CREATE OR REPLACE TRIGGER picshare_fence BEFORE INSERT OR UPDATE OR DELETE "
                    f"ON {table.name} FOR EACH ROW EXECUTE FUNCTION picshare_fence({owners})",
                )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", FENCE_LOCK)


async def unfence(db: Databases, logical: int) -> None:
    """Lift the fence of `logical` on `db`; the triggers go with the last fence."""
    async with db.write() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", FENCE_LOCK)
        try:
            await conn.execute("DELETE FROM shard_fences WHERE logical = $1", logical)
            if not await conn.fetchval("SELECT count(*) FROM shard_fences"):
                for table in await tables_here(conn):
                    await _ddl(conn, f"DROP TRIGGER IF EXISTS picshare_fence ON {table.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", FENCE_LOCK)


async def _ddl(conn: Connection, statement: str) -> None:
    """A trigger made or dropped in a transaction of its own, one table at a
    time, never queueing long behind a running transaction: a DDL lock waited
    for blocks every later reader and writer of the table (the other logical
    shards too), and two tables' locks taken in one transaction could
    deadlock with a request that reads them in the other order."""
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_WAIT_MS}ms'")
                await conn.execute(statement)
            return
        except asyncpg.LockNotAvailableError:
            if attempt == DDL_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)


async def delete_moved(db: Databases, logical: int, still_here: Sequence[int]) -> int:
    """Delete from the source what now lives elsewhere: the rows of `logical`,
    except a follow whose other owner still lives here (`still_here`)."""
    deleted = 0
    async with db.transaction() as conn:
        # The fence must not stop the move's own clean-up (picshare_fence()).
        await conn.execute("SET LOCAL picshare.moving = 'on'")
        for table in reversed(await tables_here(conn)):
            where = _belongs(table)
            status = await conn.execute(
                f"DELETE FROM {table.name} WHERE {where}",
                *_used(where, (logical, list(still_here))),
            )
            deleted += int(status.split()[-1])
    return deleted


async def recount_tags(db: Databases) -> None:
    """Tag counts are per database: after photos left or came, count again."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE tags t SET photo_count = coalesce((SELECT count(*) FROM photos p "
            "WHERE t.tag = ANY(p.tags)), 0)"
        )
        await conn.execute(
            "INSERT INTO tags (tag, photo_count) SELECT t, count(*) FROM photos, unnest(tags) t "
            "GROUP BY t ON CONFLICT (tag) DO UPDATE SET photo_count = excluded.photo_count"
        )


async def move(
    shards: Shards,
    logical: int,
    target: int,
    *,
    grace: float,
    progress: Progress | None = None,
) -> MoveReport:
    """Move logical shard `logical` to physical database `target` (0-based)."""
    if not 0 <= logical < len(shards.map.placement):
        last = len(shards.map.placement) - 1
        raise MoveError(f"logical shard {logical} does not exist (0-{last})")
    if not 0 <= target < len(shards.physical):
        raise MoveError(f"database {target + 1} does not exist (1-{len(shards.physical)})")
    started = time.monotonic()
    source, phase, resumed = await _begin(shards, logical, target)
    src, dst = shards.physical[source], shards.physical[target]
    report = MoveReport(logical, src.primary.label, dst.primary.label)
    report.resumed_from = phase if resumed or phase == "done" else ""
    if phase == "done":
        return report
    if phase == "copying":
        on_target = shards.map.logical_on(target)
        total = await count_rows(src, logical, on_target)
        if progress is not None:
            progress("total", total)
        report.rows = await _copy(src, dst, logical, on_target, prune=False, progress=progress)
        paused = time.monotonic()
        await fence(src, logical)
        await _copy(src, dst, logical, on_target, prune=True, progress=None)
        await _switch(shards, logical, target)
        report.pause_seconds = time.monotonic() - paused
    # Every process reloads the map within the grace period; only then may the
    # source forget the rows (until then a reader with the old map finds them).
    await asyncio.sleep(grace)
    still_here = [s for s, p in enumerate(shards.map.placement) if p == source and s != logical]
    await delete_moved(src, logical, still_here)
    await unfence(src, logical)
    await recount_tags(src)
    await recount_tags(dst)
    async with shards.catalog.write() as conn:
        await conn.execute("DELETE FROM shard_moves WHERE logical = $1", logical)
    report.seconds = time.monotonic() - started
    return report


async def _begin(shards: Shards, logical: int, target: int) -> tuple[int, str, bool]:
    """Where the move stands: (source database, phase, whether an earlier run
    began it); recorded when new. Phase "done": the shard already lives there."""
    async with shards.catalog.transaction() as conn:
        row = await conn.fetchrow(
            "SELECT source, target, phase FROM shard_moves WHERE logical = $1 FOR UPDATE", logical
        )
        if row is not None:
            if row["target"] != target:
                raise MoveError(
                    f"logical shard {logical} is already being moved to database "
                    f"{row['target'] + 1}: run that move again to finish it first"
                )
            return int(row["source"]), str(row["phase"]), True
        source = await conn.fetchval("SELECT physical FROM shard_map WHERE logical = $1", logical)
        if source == target:
            return int(source), "done", False
        await conn.execute(
            "INSERT INTO shard_moves (logical, source, target, phase) "
            "VALUES ($1, $2, $3, 'copying')",
            logical,
            source,
            target,
        )
    return int(source), "copying", False


async def _copy(
    src: Databases,
    dst: Databases,
    logical: int,
    on_target: Sequence[int],
    *,
    prune: bool,
    progress: Progress | None,
) -> int:
    copied = 0
    # Every table read in one snapshot of the source: table by table in
    # snapshots of their own, a photo uploaded after the photos' copy and
    # liked before the likes' reached the target as a like without its photo
    # (likes_photo_id_fkey), and the move failed. Parents before children in
    # one snapshot, each child's parent is on the target before it.
    async with (
        src.transaction(isolation="repeatable_read", readonly=True) as source,
        dst.write() as target,
    ):
        theirs = await tables_here(target)
        for table in [t for t in await tables_here(source) if t in theirs]:

            def step(n: int, name: str = table.name) -> None:
                if progress is not None:
                    progress(name, n)

            copied += await sync_table(
                source, target, table, logical, on_target, prune=prune, progress=step
            )
    return copied


async def _switch(shards: Shards, logical: int, target: int) -> None:
    """Point the map at the target and record it, in one catalog transaction."""
    async with shards.catalog.transaction() as conn:
        await save_move(conn, logical, target)
        await conn.execute(
            "UPDATE shard_moves SET phase = 'switched', updated_at = now() WHERE logical = $1",
            logical,
        )
    shards.map = shards.map.moved(logical, target)

"""Ordered SQL migrations, applied once each, each in its own transaction.

Files are `storage/migrations/NNNN_name.sql`. Applied ones are recorded in
`schema_migrations` with a checksum (an edited, already-applied file stops the
run). A session advisory lock makes two processes starting together take
turns instead of racing.

Table groups (`storage/table_groups.py`): a line `-- @group NAME [NAME...]`
starts a section of statements that belong to those groups; it runs on a
database only if that database hosts every group it names. Statements before
the first marker, or after `-- @group *`, run on every database. A database
records the groups it was made for (`schema_groups`); a start that asks it to
host others is refused, since the tables it skipped would be missing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from storage.db import Connection
from storage.table_groups import ADDED_BESIDE, EVERY_GROUP, TABLES, group_named

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every PicShare process.
ADVISORY_LOCK_KEY = 0x50_1C_5A_4E
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MARKER = re.compile(r"^-- @group (.+)$", re.MULTILINE)
_MARKER_LINE = re.compile(r"^-- @group .+\n", re.MULTILINE)
_COMMENT_LINES = re.compile(r"^\s*--.*$", re.MULTILINE)
# Files whose statements moved between sections when table groups came (a
# foreign key between two groups taken out of its CREATE TABLE into a
# statement of its own, same name, same effect): the checksums they had, which
# databases made before then recorded.
EARLIER_CHECKSUMS: dict[int, frozenset[str]] = {
    1: frozenset({"25b24ef146b505f21f93b64566efb632770b33f405f86ea832d18dad033c92b8"}),
    2: frozenset({"a39e154bc0e5fdbaa5c7d258d9db90d9979ac3f455382dff398abec38f4731a6"}),
    4: frozenset({"0ac3121c35594727caf6fe3f3e264d0456153350c21c41dc7b2df0c46f2e5077"}),
}


class MigrationError(RuntimeError):
    """A migration cannot run: edited after it was applied, or for groups
    the database was not made for."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        # Without the markers: marking a file's groups is no edit of its SQL.
        return hashlib.sha256(_MARKER_LINE.sub("", self.sql).encode()).hexdigest()

    def accepts(self, recorded: str) -> bool:
        return recorded == self.checksum or recorded in EARLIER_CHECKSUMS.get(self.version, ())

    def sql_for(self, groups: frozenset[str]) -> str:
        """The statements of the sections whose groups all live in `groups`."""
        parts, needs, start = [], frozenset[str](), 0
        for marker in _MARKER.finditer(self.sql):
            if needs <= groups:
                parts.append(self.sql[start : marker.start()])
            names = marker.group(1).split()
            needs = frozenset() if names == ["*"] else frozenset(map(group_named, names))
            start = marker.end()
        if needs <= groups:
            parts.append(self.sql[start:])
        return "".join(parts)


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name} is not NNNN_name.sql")
        found.append(Migration(int(match.group(1)), path.stem, path.read_text("utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def migrate(
    conn: Connection,
    *,
    shard_id: int,
    directory: Path = MIGRATIONS_DIR,
    groups: frozenset[str] = EVERY_GROUP,
) -> list[str]:
    """Apply what is missing of `groups`' tables (and of what every database
    has); return the names applied now."""
    migrations = discover(directory)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {r["version"]: r for r in rows}
        await _check_groups(conn, groups, made_before=bool(done))
        for m in migrations:
            if m.version in done:
                if not m.accepts(done[m.version]["checksum"]):
                    raise MigrationError(f"applied migration {m.name} was edited afterwards")
                continue
            sql = m.sql_for(groups)
            async with conn.transaction():
                # A file may have nothing for these groups but comments, which
                # PostgreSQL answers with no command at all.
                if _COMMENT_LINES.sub("", sql).strip():
                    await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            log.info("applied migration %s", m.name)
            applied_now.append(m.name)
        # The shard this database is, carried in every ID it makes.
        await conn.execute("UPDATE shard_info SET shard_id = $1", shard_id)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return applied_now


async def _check_groups(conn: Connection, groups: frozenset[str], *, made_before: bool) -> None:
    """Record the groups a new database hosts; refuse to host others in an
    existing one. A database made before table groups hosted all of them."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_groups (name text PRIMARY KEY)")
    recorded = {r["name"] for r in await conn.fetch("SELECT name FROM schema_groups")}
    if not recorded:
        recorded = set(EVERY_GROUP if made_before else groups)
        await conn.execute(
            "INSERT INTO schema_groups (name) SELECT unnest($1::text[])", sorted(recorded)
        )
    added = {g for g in groups - recorded if ADDED_BESIDE.get(g) in recorded}
    if added:
        await conn.execute(
            "INSERT INTO schema_groups (name) SELECT unnest($1::text[])", sorted(added)
        )
        recorded |= added
    if not groups <= recorded:
        raise MigrationError(
            "this database holds the table groups "
            f"{', '.join(sorted(g.upper() for g in recorded))}, but the settings put "
            f"{', '.join(sorted(g.upper() for g in groups - recorded))} in it too: its "
            "tables were never made here, and moving a group between databases is not "
            "supported; set the group URLs back"
        )
    if recorded - groups:
        # Its tables stay, unused: a group now elsewhere starts empty there.
        await _drop_keys_to(conn, groups, recorded - groups)
        log.warning(
            "this database also has the tables of %s, which the settings put in a "
            "database of its own: rows here are not used (moving a group's rows is not "
            "supported)",
            ", ".join(sorted(g.upper() for g in recorded - groups)),
        )


async def _drop_keys_to(conn: Connection, hosted: frozenset[str], gone: set[str]) -> None:
    """Drop the foreign keys from a hosted group's table to a table of a group
    now in a database of its own: its rows here are no longer the truth, and
    the key would refuse rows the hosted group writes (a notification about a
    comment that lives elsewhere). A database made with the groups apart
    never had these keys (a section naming two groups runs only where both
    live); this makes one they moved out of the same."""
    group_of = {table: group for group, tables in TABLES.items() for table in tables}
    rows = await conn.fetch(
        "SELECT c.conname, t.relname AS tbl, r.relname AS ref FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid "
        "WHERE c.contype = 'f' AND t.relnamespace = 'public'::regnamespace"
    )
    for row in rows:
        if group_of.get(row["tbl"]) in hosted and group_of.get(row["ref"]) in gone:
            await conn.execute(
                f"ALTER TABLE {_quoted(row['tbl'])} DROP CONSTRAINT {_quoted(row['conname'])}"
            )
            log.warning("dropped %s: %s is in a database of its own", row["conname"], row["ref"])


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

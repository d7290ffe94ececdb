"""Migrations per table group, on real PostgreSQL: a database made for some
groups gets their tables (and what every database has) and no others."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from storage.migrate import MIGRATIONS_DIR, MigrationError, migrate
from storage.table_groups import EVERY_DATABASE, EVERY_GROUP, GROUPS, SEARCH, TABLES, USERS
from tests.harness import PostgresForTests

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

Fresh = Callable[[str], Awaitable[asyncpg.Connection]]


@pytest.fixture
async def fresh(postgres: PostgresForTests) -> AsyncIterator[Fresh]:
    """Makes empty databases by name; all dropped afterwards."""
    made: list[str] = []
    conns: list[asyncpg.Connection] = []

    async def make(name: str) -> asyncpg.Connection:
        url = await postgres.create_empty_database(name)
        made.append(name)
        conn = await asyncpg.connect(url)
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        await conn.close()
    for name in made:
        await postgres.drop_database(name)


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def foreign_keys(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT conname FROM pg_constraint WHERE contype = 'f'")
    return {r["conname"] for r in rows}


async def test_each_group_alone_gets_its_tables_only(fresh: Fresh) -> None:
    for group in GROUPS:
        conn = await fresh(f"picshare_group_{group}")
        applied = await migrate(conn, shard_id=1, groups=frozenset({group}))
        assert applied, group
        assert await tables(conn) == TABLES[group] | EVERY_DATABASE, group
        # IDs work wherever a group lives.
        assert await conn.fetchval("SELECT picshare_next_id(5)") > 0
        # Run again: nothing to do, the groups recorded.
        assert await migrate(conn, shard_id=1, groups=frozenset({group})) == []


async def test_all_groups_together_is_the_single_database(fresh: Fresh) -> None:
    conn = await fresh("picshare_group_all")
    await migrate(conn, shard_id=1)
    assert await tables(conn) == set().union(*TABLES.values()) | EVERY_DATABASE
    # The keys between groups exist where both groups live (a photo's likes
    # go with it); split apart, each group's database has none of them.
    keys = await foreign_keys(conn)
    assert {"photos_owner_id_fkey", "likes_photo_id_fkey", "notifications_user_id_fkey"} <= keys
    apart = await fresh("picshare_group_likes_photos")
    await migrate(apart, shard_id=1, groups=frozenset({"likes"}))
    assert await foreign_keys(apart) == set()


async def test_a_database_keeps_the_groups_it_was_made_for(
    fresh: Fresh,
) -> None:
    conn = await fresh("picshare_group_keep")
    await migrate(conn, shard_id=1, groups=frozenset({"payments"}))
    # Its sections for other groups never ran: hosting them now would find
    # their tables missing, so the start is refused, saying what to do.
    with pytest.raises(MigrationError, match=r"PAYMENTS.*USERS"):
        await migrate(conn, shard_id=1, groups=frozenset({"payments", USERS}))
    # One made for all (the default) may host fewer: the group moved out
    # starts empty in its own database; its tables here stay, unused.
    whole = await fresh("picshare_group_whole")
    await migrate(whole, shard_id=1)
    assert await migrate(whole, shard_id=1, groups=EVERY_GROUP - {"payments"}) == []


async def test_a_group_added_later_joins_the_databases_of_its_neighbour(
    fresh: Fresh, tmp_path: Path
) -> None:
    """A database made before the SEARCH group (migrations up to 0014, the
    groups of then recorded) takes it on at the next start, beside PHOTOS."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0015":
            shutil.copy(path, before / path.name)
    conn = await fresh("picshare_group_added")
    await migrate(conn, shard_id=1, directory=before, groups=EVERY_GROUP - {SEARCH})
    assert "search_photos" not in await tables(conn)
    applied = await migrate(conn, shard_id=1)
    assert "0015_search_index" in applied
    assert TABLES[SEARCH] <= await tables(conn)
    recorded = {r["name"] for r in await conn.fetch("SELECT name FROM schema_groups")}
    assert SEARCH in recorded

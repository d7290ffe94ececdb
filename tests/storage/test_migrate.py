"""The migration runner and the ID function, on real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from storage.ids import created_at_of, shard_of
from storage.migrate import MigrationError, migrate
from tests.harness import PostgresForTests, with_database


async def test_fresh_database_two_processes_migrate_together(postgres: PostgresForTests) -> None:
    conn = await asyncpg.connect(postgres.admin_dsn)
    await conn.execute('CREATE DATABASE "picshare_mig_race"')
    await conn.close()
    url = with_database(postgres.admin_dsn, "picshare_mig_race")
    try:
        a, b = await asyncpg.connect(url), await asyncpg.connect(url)
        results = await asyncio.gather(migrate(a, shard_id=3), migrate(b, shard_id=3))
        # The advisory lock made them take turns: one applied, the other found it done.
        assert sorted(len(r) for r in results) == [0, len(results[0]) + len(results[1])]
        assert await migrate(a, shard_id=3) == []
        count = await a.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == sum(len(r) for r in results)
        await a.close()
        await b.close()
    finally:
        await postgres.drop_database("picshare_mig_race")


async def test_edited_migration_stops_the_run(database_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        (tmp_path / "0001_foundation.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match="edited"):
            await migrate(conn, shard_id=1, directory=tmp_path)
    finally:
        await conn.close()


async def test_ids_are_time_ordered_and_carry_the_shard(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE shard_info SET shard_id = 42")
        ids = [await conn.fetchval("SELECT picshare_next_id()") for _ in range(50)]
    finally:
        await conn.close()
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(shard_of(i) == 42 for i in ids)
    assert created_at_of(ids[0]).year >= 2026

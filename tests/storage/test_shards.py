"""Shards over real clusters (storage/shards.py, storage/shard_map.py): the map
made once in the catalog, IDs that name their database, reads across shards
that leave out a stopped or slow one instead of failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from picshare.config import Settings
from picshare.database import open_shards
from storage.ids import shard_of
from storage.router import PRIMARY, Databases
from storage.shard_map import ShardMapError
from tests.conftest import sharded_settings
from tests.shard_harness import ShardClusters

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass


def sharded(tmp_path: Path, dsns: list[str], **database: object) -> Settings:
    return sharded_settings(tmp_path / "data", dsns, database)


async def test_the_map_is_made_once_in_the_catalog(tmp_path: Path, shard_dsns: list[str]) -> None:
    async with open_shards(sharded(tmp_path, shard_dsns)) as shards:
        assert shards.catalog is shards.physical[0]
        labels = [db.primary.label for db in shards.physical]
        assert labels == ["shard-1/primary", "shard-2/primary"]
        placement = shards.map.placement
        assert len(placement) == 1024 and placement[:512] == (0,) * 512
        assert placement[512:] == (1,) * 512
        async with shards.physical[1].read(PRIMARY) as conn:
            # The map lives in the catalog only.
            assert await conn.fetchval("SELECT count(*) FROM shard_map") == 0
    async with open_shards(sharded(tmp_path, shard_dsns)) as again:
        assert again.map == shards.map
    with pytest.raises(ShardMapError, match="hash router with 1024"):
        async with open_shards(sharded(tmp_path, shard_dsns, shard_router="range")):
            raise AssertionError("opened with settings that do not match the map")
    with pytest.raises(ShardMapError, match="only 1 are configured"):
        async with open_shards(sharded(tmp_path, shard_dsns[:1])):
            raise AssertionError("opened with settings that do not match the map")


async def test_an_id_names_its_database(tmp_path: Path, shard_dsns: list[str]) -> None:
    async with open_shards(sharded(tmp_path, shard_dsns, shard_router="range")) as shards:
        for name, index in (("alice", 0), ("nina", 1), ("9lives", 0), ("zoe", 1)):
            logical = shards.logical_for(name)
            db = shards.of_username(name)
            assert shards.index_of(db) == index
            async with db.write() as conn:
                made = await conn.fetchval("SELECT picshare_next_id($1)", logical)
            assert shard_of(made) == logical
            assert shards.of_id(made) is db
        ids = [await _id_on(shards.physical[i % 2], i % 2) for i in range(6)]
        grouped = shards.by_database(ids)
        assert [(shards.index_of(db), found) for db, found in grouped] == [
            (0, ids[0::2]),
            (1, ids[1::2]),
        ]


async def _id_on(db: Databases, logical: int) -> int:
    async with db.write() as conn:
        made: int = await conn.fetchval("SELECT picshare_next_id($1)", logical)
    return made


async def test_a_stopped_shard_is_left_out_not_an_error(
    tmp_path: Path, shard_dsns: list[str], shard_clusters: ShardClusters
) -> None:
    async def which(db: Databases) -> str:
        async with db.read(PRIMARY) as conn:
            await conn.fetchval("SELECT 1")
        return db.primary.label

    settings = sharded(tmp_path, shard_dsns, connect_timeout=2.0)
    async with open_shards(settings) as shards:
        whole = await shards.gather(which)
        assert whole.results == ["shard-1/primary", "shard-2/primary"] and not whole.partial
        await asyncio.to_thread(shard_clusters.clusters[1].stop)
        part = await shards.gather(which, budget=3.0)
        assert part.results == ["shard-1/primary"] and part.partial


async def test_a_slow_shard_is_left_out_after_its_budget(
    tmp_path: Path, shard_dsns: list[str]
) -> None:
    async def slow_second(db: Databases) -> int:
        index = shards.index_of(db)
        async with db.read(PRIMARY) as conn:
            await conn.execute("SELECT pg_sleep($1)", 2.0 * index)
        return index

    async with open_shards(sharded(tmp_path, shard_dsns)) as shards:
        started = asyncio.get_running_loop().time()
        got = await shards.gather(slow_second, budget=0.5)
        assert got.results == [0] and got.partial
        assert asyncio.get_running_loop().time() - started < 1.5

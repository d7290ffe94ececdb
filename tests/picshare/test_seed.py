"""`run.py seed` across shards (picshare/seed.py): every row on the database its
user's id names, follows on both sides, counts exact on every shard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from picshare.database import open_shards
from picshare.seed import SeedPlan, seed
from storage.ids import shard_of
from storage.local_blobs import LocalBlobStore
from storage.router import PRIMARY, Databases
from tests.conftest import make_settings
from tests.harness import PostgresForTests

PLAN = SeedPlan(
    users=60, photos=300, likes=900, follows_per_user=5, heavy_follows=20, comments=120, images=2
)


async def test_seed_spreads_rows_over_the_shards(tmp_path: Path, shard_dsns: list[str]) -> None:
    settings = make_settings(
        tmp_path / "data", "", database={"url": "", "shards": tuple(shard_dsns)}
    )
    async with open_shards(settings) as shards:
        report = await seed(shards, LocalBlobStore(tmp_path / "blobs"), PLAN, quiet=True)
        assert (report.users, report.photos, report.likes) == (60, 300, 900)
        users = photos = likes = 0
        follows: set[tuple[int, int]] = set()
        for index, db in enumerate(shards.physical):
            async with db.read(PRIMARY) as conn:
                for table, column in (
                    ("users", "id"),
                    ("photos", "id"),
                    ("likes", "photo_id"),
                    ("comments", "photo_id"),
                    ("notifications", "user_id"),
                ):
                    found = [r[0] for r in await conn.fetch(f"SELECT {column} FROM {table}")]
                    # Each row where its id says: no row on another database.
                    assert {shards.map.physical_of(shard_of(i)) for i in found} <= {index}
                for row in await conn.fetch("SELECT follower_id, followee_id FROM follows"):
                    on = {shards.map.physical_of(shard_of(i)) for i in row}
                    assert index in on  # a follow row lives with one of its two users
                    follows.add((row[0], row[1]))
                users += await conn.fetchval("SELECT count(*) FROM users")
                photos += await conn.fetchval("SELECT count(*) FROM photos")
                likes += await conn.fetchval("SELECT count(*) FROM likes")
                # Denormalized counts are exact on every shard.
                assert not await conn.fetchval(
                    "SELECT count(*) FROM users u WHERE follower_count <> "
                    "(SELECT count(*) FROM follows f WHERE f.followee_id = u.id) "
                    "OR following_count <> (SELECT count(*) FROM follows f "
                    "WHERE f.follower_id = u.id) OR photo_count <> "
                    "(SELECT count(*) FROM photos p WHERE p.owner_id = u.id)"
                )
        assert (users, photos, likes) == (60, 300, 900)
        assert len(follows) == report.follows
        both = [await _count(db) for db in shards.physical]
        assert all(n > 0 for n in both), both  # the hash router used both databases
        async with shards.catalog.read(PRIMARY) as conn:
            assert await conn.fetchval("SELECT count(*) FROM user_directory") == 60


async def _count(db: Databases) -> int:
    async with db.read(PRIMARY) as conn:
        n: int = await conn.fetchval("SELECT count(*) FROM users")
    return n


@pytest.mark.one_pass
async def test_seed_with_likes_and_comments_apart(
    tmp_path: Path, database_url: str, postgres: PostgresForTests
) -> None:
    """Likes and comments go to their groups' database (here one for both),
    and the photos' counts (on the photos' databases) are made from them."""
    apart = await postgres.create_empty_database("picshare_seed_apart")
    settings = make_settings(tmp_path / "data", database_url)
    settings = settings.replace(
        database={
            "group_likes_url": apart,
            "group_comments_url": apart,
            "url": settings.database.url,
        }
    )
    try:
        async with open_shards(settings) as shards:
            plan = replace(PLAN, users=20, photos=40, likes=100, comments=30)
            await seed(shards, LocalBlobStore(tmp_path / "blobs"), plan, quiet=True)
            assert shards.likes is not None and shards.likes is shards.comments
            for table, column, total in (
                ("likes", "like_count", 100),
                ("comments", "comment_count", 30),
            ):
                async with shards.likes.read(PRIMARY) as conn:
                    found = await conn.fetch(
                        f"SELECT photo_id, count(*) FROM {table} GROUP BY photo_id"
                    )
                counts = {int(r[0]): int(r[1]) for r in found}
                assert sum(counts.values()) == total
                shown: dict[int, int] = {}
                for db in shards.physical:
                    async with db.read(PRIMARY) as conn:
                        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
                        rows = await conn.fetch(
                            f"SELECT id, {column} FROM photos WHERE {column} > 0"
                        )
                        shown.update({int(r[0]): int(r[1]) for r in rows})
                assert shown == counts, table
    finally:
        await postgres.drop_database("picshare_seed_apart")

"""At a realistic (if smaller) volume, the hot queries use their indexes.

Seeds 5,000 users, 30,000 photos and 60,000 likes with the real seeder, then
EXPLAINs the exact SQL the repositories run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from picshare.search_index import SearchIndexer
from picshare.seed import SeedPlan, seed
from storage import photos_repo, search_repo
from storage.databases import primary_only
from storage.db import create_pool
from storage.local_blobs import LocalBlobStore
from storage.shards import Shards

PLAN = SeedPlan(
    users=5_000,
    photos=30_000,
    likes=60_000,
    follows_per_user=5,
    heavy_follows=1_000,
    comments=2_000,
    images=2,
)


async def _plan(conn: asyncpg.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Every node of the plan, flattened."""
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return nodes


def indexes(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Index Name"] for n in nodes if "Index Name" in n}


def seq_scanned(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}


@pytest.fixture
async def seeded(database_url: str, tmp_path: Path) -> dict[str, Any]:
    pool = await create_pool(
        database_url, min_size=1, max_size=2, command_timeout=120, connect_timeout=10
    )
    async with pool:
        shards = Shards.of_one(primary_only(pool))
        await seed(shards, LocalBlobStore(tmp_path / "blobs"), PLAN, quiet=True)
        await SearchIndexer(db=shards).reindex()
        await pool.execute("ANALYZE search_photos")
        heavy = await pool.fetchval("SELECT id FROM users ORDER BY following_count DESC LIMIT 1")
        owner = await pool.fetchval("SELECT id FROM users ORDER BY photo_count DESC LIMIT 1")
    return {"heavy": heavy, "owner": owner, "username": "zanzibar"}


async def test_hot_queries_use_indexes(database_url: str, seeded: dict[str, Any]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        feed = await _plan(conn, photos_repo.HOME_FEED_SQL, seeded["heavy"], 2**62, 21)
        assert "photos_owner_ready" in indexes(feed)
        assert "photos" not in seq_scanned(feed)
        dense = await _plan(conn, photos_repo.HOME_FEED_DENSE_SQL, seeded["heavy"], 2**62, 21)
        assert "photos_ready_id" in indexes(dense)
        assert "photos" not in seq_scanned(dense)
        profile = await _plan(
            conn, photos_repo.BY_OWNER_SQL, seeded["heavy"], seeded["owner"], 2**62, 21, None
        )
        assert indexes(profile) & {"photos_owner_ready", "photos_owner_id"}
        assert "photos" not in seq_scanned(profile)
        tagged = await _plan(conn, photos_repo.TAGGED_SQL, seeded["heavy"], "travel", 2**62, 21)
        assert indexes(tagged) & {"photos_tags", "photos_pkey", "photos_ready_id"}
        assert "photos" not in seq_scanned(tagged)
        # Seeded names come from a 37-word vocabulary, so they share most trigrams
        # and at this volume PostgreSQL rightly finds a scan cheaper. With varied
        # names at 20k users it picks a BitmapOr of both indexes (README). Here we
        # show the indexes can serve the query.
        await conn.execute("SET enable_seqscan = off")
        name = seeded["username"]
        users = await _plan(conn, search_repo.USERS_SQL, name, search_repo.like_prefix(name), 10)
        # The seeded tags are a few dozen: a scan is cheaper there too.
        tags = await _plan(conn, search_repo.TAGS_SQL, "travl", "travl%", 10)
        await conn.execute("RESET enable_seqscan")
        assert indexes(users) & {"search_users_prefix", "search_users_trgm"}
        assert "search_users" not in seq_scanned(users)
        # (A few dozen tags: walking the key in order serves the grouping.)
        assert indexes(tags) & {"search_tags_prefix", "search_tags_trgm", "search_tags_pkey"}
        assert "search_tags" not in seq_scanned(tags)
        # A common word: the newest index rows, walked by the primary key.
        recent = await _plan(
            conn, search_repo.RECENT_PHOTOS_SQL, seeded["heavy"], "harbour:*", 10, 50, 1000
        )
        assert "search_photos_pkey" in indexes(recent)
        assert not seq_scanned(recent) & {"search_photos", "photos"}
        # A rare word: its few matches, through the GIN index.
        rare = await _plan(conn, search_repo.ALL_PHOTOS_SQL, seeded["heavy"], "zanzib:*", 10, 50)
        assert "search_photos_tsv" in indexes(rare)
        assert not seq_scanned(rare) & {"search_photos", "photos"}
    finally:
        await conn.close()

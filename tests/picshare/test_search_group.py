"""The SEARCH table group in a database of its own
(`PICSHARE_DATABASE_GROUP_SEARCH_URL`), a fresh empty one: photos, users and
tags are indexed there from their events, searched there, and the privacy
rule runs again on the photos' own shards (a private account's photo is not
found by a stranger); nothing of the index is written where the users live;
`reindex` fills it from the shards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from storage.table_groups import EVERY_DATABASE, TABLES
from tests import imaging
from tests.conftest import AiohttpClient, bearer, signup, upload
from tests.groups_apart import count, empty_database, settings_apart
from tests.harness import PostgresForTests, tables_of
from tests.searching import photo_ids, search
from tests.sharded import follows_settled, user_id, wait_for

Client = TestClient[Any, Any]
INDEX_TABLES = ("search_photos", "search_users", "search_tags")


@pytest.fixture
async def index_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    async with empty_database(postgres, "search") as url:
        yield url


@pytest.fixture
async def client(
    tmp_path: Path,
    database_url: str,
    index_url: str,
    media_pool: Any,
    aiohttp_client: AiohttpClient,
) -> Client:
    """An app whose search index lives in `index_url`."""
    settings = settings_apart(tmp_path / "data", database_url, "search", index_url)
    made: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return made


async def test_search_in_its_own_database(client: Client, index_url: str) -> None:
    shards = client.app[keys.DATABASES]
    assert shards.search_db is not None and shards.search_db not in shards.physical
    # Only the group's tables and what every database has: no users, no photos.
    assert await tables_of(index_url) == TABLES["search"] | EVERY_DATABASE

    owner = await signup(client, "marigold")
    await signup(client, "marimba_player")
    stranger = await signup(client, "passerby")
    friend = await signup(client, "confidant")
    resp = await upload(
        client, owner, imaging.jpeg_bytes(32, 32), caption="quokkas at dawn", tags="sunflower"
    )
    public_id = (await resp.json())["id"]

    async def users_indexed() -> bool:
        return await count(index_url, "SELECT count(*) FROM search_users") == 4

    async def photo_indexed() -> bool:
        found = photo_ids(await search(client, "quokka"))
        tags = [t["tag"] for t in (await search(client, "sunflowr"))["tags"]]
        return found == [public_id] and tags == ["sunflower"]

    await wait_for(users_indexed, what="the new accounts indexed")
    await wait_for(photo_indexed, what="the photo and its tag indexed")
    names = [u["username"] for u in (await search(client, "mari"))["users"]]
    assert names[:2] == ["marigold", "marimba_player"]  # prefix
    assert [u["username"] for u in (await search(client, "@marigols"))["users"]][:1] == [
        "marigold"
    ]  # fuzzy
    assert [t["tag"] for t in (await search(client, "#sun"))["tags"]] == ["sunflower"]

    # A private account's photo: the friend (an approved follower) and the
    # owner find it; a stranger and the anonymous viewer do not.
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    await client.put("/api/v1/users/marigold/follow", headers=bearer(friend))
    await client.post("/api/v1/me/follow-requests/confidant/approve", headers=bearer(owner))
    # The candidates are chosen by whom the viewer follows, on the viewer's
    # shard: the follow's mirror there is a job across shards.
    friend_id, owner_id = (
        await user_id(client.app, "confidant"),
        await user_id(client.app, "marigold"),
    )
    await wait_for(
        lambda: follows_settled(client.app, friend_id, owner_id), what="the follow on both sides"
    )
    resp = await upload(client, owner, imaging.jpeg_bytes(32, 32), caption="hiddenword")
    hidden_id = (await resp.json())["id"]

    async def friend_finds() -> bool:
        # Once its photo.ready is indexed (the owner sees it before).
        return photo_ids(await search(client, "hiddenw", friend)) == [hidden_id]

    await wait_for(friend_finds, what="the private photo indexed as ready")
    assert photo_ids(await search(client, "hiddenw", owner)) == [hidden_id]
    assert photo_ids(await search(client, "hiddenw", stranger)) == []
    assert photo_ids(await search(client, "hiddenw")) == []
    assert photo_ids(await search(client, "quokka", stranger)) == []  # now private too
    # An index row behind the truth shows nothing: the rule runs again on the
    # photo's shard, as the owner now is.
    conn = await asyncpg.connect(index_url)
    try:
        await conn.execute("UPDATE search_photos SET private = false")
    finally:
        await conn.close()
    assert photo_ids(await search(client, "hiddenw", stranger)) == []

    # Deleted: gone from the index and from the tag counts.
    gone = await client.delete(f"/api/v1/photos/{public_id}", headers=bearer(owner))
    assert gone.status == 204

    async def tag_forgotten() -> bool:
        return await count(index_url, "SELECT count(*) FROM search_tags") == 0

    await wait_for(tag_forgotten, what="the deleted photo's tag count gone")

    # None of the index rows landed where the users live (the suite's
    # template has its own, unused, index tables).
    for db in shards.physical:
        async with db.read() as conn2:
            for table in INDEX_TABLES:
                assert await conn2.fetchval(f"SELECT count(*) FROM {table}") == 0, table

    # A reindex from the shards fills an emptied index again.
    conn = await asyncpg.connect(index_url)
    try:
        await conn.execute("TRUNCATE search_photos, search_users, search_tags, search_progress")
    finally:
        await conn.close()
    report = await client.app[keys.SEARCH_INDEX].reindex()
    assert report.users == 4 and report.photos == 1
    assert photo_ids(await search(client, "hiddenw", friend)) == [hidden_id]
    assert [u["username"] for u in (await search(client, "mari"))["users"]][:1] == ["marigold"]

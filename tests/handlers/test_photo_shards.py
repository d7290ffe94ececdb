"""Photos, likes, comments and notifications on two real shards (the range
router: alice..mike on the first, nina..zoe on the second): a photo lives on
its owner's shard and its id leads there alone; a like or comment from a user
of the other shard lands on the photo's shard with its notification; a blob
shared by photos of both shards outlives either; a new photo's followers are
told on their own shards, a stopped one catching up when it is back."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from picshare.photos import NOTIFY_JOB
from storage.ids import shard_of
from storage.router import Databases
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload, upload_ready
from tests.shard_harness import ShardClusters

Client = TestClient[Any, Any]
_DB = re.compile(r'db;desc="([^"]+)"')
FIRST, SECOND = "shard-1/primary", "shard-2/primary"


@pytest.fixture
async def client(
    tmp_path: Path,
    shard_dsns: list[str],
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> Client:
    settings = make_settings(
        tmp_path / "data",
        "",
        database={
            "url": "",
            "shards": tuple(shard_dsns),
            "shard_router": "range",
            "connect_timeout": 2.0,
            "pool_max": 5,
        },
    )
    result: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return result


def _shards(client: Client) -> tuple[Databases, Databases]:
    first, second = client.app[keys.DATABASES].physical
    return first, second


async def _value(db: Databases, sql: str, *args: Any) -> Any:
    return await db.primary.pool.fetchval(sql, *args)


async def _user_id(client: Client, username: str) -> int:
    db = client.app[keys.DATABASES].of_username(username)
    return int(await _value(db, "SELECT id FROM users WHERE username = $1", username))


def _served(resp: Any) -> list[str]:
    return _DB.findall(resp.headers.get("Server-Timing", ""))


async def test_a_photo_lives_on_its_owners_shard_and_its_id_leads_there_alone(
    client: Client,
) -> None:
    first, second = _shards(client)
    nina = await signup(client, "nina")
    photo = await upload_ready(client, nina, imaging.jpeg_bytes(64, 48))
    photo_id = int(photo["id"])
    assert shard_of(photo_id) == shard_of(await _user_id(client, "nina"))
    assert client.app[keys.DATABASES].of_id(photo_id) is second
    assert await _value(second, "SELECT count(*) FROM photos WHERE id = $1", photo_id) == 1
    assert await _value(first, "SELECT count(*) FROM photos") == 0

    # Its owner reads it: only the second database serves (the token, the
    # photo, the viewer's flags), never the first.
    resp = await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(nina))
    assert resp.status == 200
    assert _served(resp) and set(_served(resp)) == {SECOND}
    # Anyone, from the database (not the cache): still only the second.
    await client.app[keys.CACHED_READS].photo_changed(photo_id)
    resp = await client.get(f"/api/v1/photos/{photo_id}")
    assert resp.status == 200 and (await resp.json())["id"] == photo["id"]
    assert _served(resp) and set(_served(resp)) == {SECOND}
    # Its renditions are public: found by asking the shards for the key.
    media = await client.get(photo["urls"]["thumb"])
    assert media.status == 200


async def test_a_like_and_comment_from_the_other_shard_land_on_the_photos_shard(
    client: Client,
) -> None:
    first, second = _shards(client)
    nina = await signup(client, "nina")
    alice = await signup(client, "alice")
    alice_id = await _user_id(client, "alice")
    assert client.app[keys.DATABASES].of_user(alice_id) is first
    photo = await upload_ready(client, nina, imaging.jpeg_bytes(48, 48))
    photo_id = int(photo["id"])

    resp = await client.put(f"/api/v1/photos/{photo_id}/like", headers=bearer(alice))
    assert resp.status == 200 and (await resp.json())["like_count"] == 1
    resp = await client.post(
        f"/api/v1/photos/{photo_id}/comments", json={"text": "hello"}, headers=bearer(alice)
    )
    assert resp.status == 201
    comment_id = int((await resp.json())["id"])

    # The like, the comment and both notifications to nina: on the photo's shard.
    for table in ("likes", "comments"):
        assert await _value(second, f"SELECT count(*) FROM {table}") == 1
        assert await _value(first, f"SELECT count(*) FROM {table}") == 0
    assert shard_of(comment_id) == shard_of(photo_id)
    notes = await second.primary.pool.fetch("SELECT id, kind FROM notifications ORDER BY id")
    assert [n["kind"] for n in notes] == ["like", "comment"]
    assert {shard_of(n["id"]) for n in notes} == {shard_of(await _user_id(client, "nina"))}
    assert await _value(first, "SELECT count(*) FROM notifications") == 0
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(nina))).json()
    assert [n["kind"] for n in inbox["items"]] == ["comment", "like"]
    assert inbox["unread"] == 2

    seen = await (await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(alice))).json()
    assert seen["liked_by_me"] is True and seen["comment_count"] == 1
    listed = await (await client.get(f"/api/v1/photos/{photo_id}/comments")).json()
    assert [c["text"] for c in listed["items"]] == ["hello"]
    # The comment found by its id alone, deleted by its author.
    resp = await client.delete(f"/api/v1/comments/{comment_id}", headers=bearer(alice))
    assert resp.status == 204
    resp = await client.delete(f"/api/v1/photos/{photo_id}/like", headers=bearer(alice))
    assert (await resp.json())["like_count"] == 0
    assert await _value(second, "SELECT count(*) FROM likes") == 0
    assert await _value(second, "SELECT comment_count FROM photos") == 0


async def _jobs_settled(client: Client) -> None:
    """Every shard's jobs done (or parked): what they were to do is done."""
    async with asyncio.timeout(30):
        for db in client.app[keys.DATABASES].physical:
            while await _value(
                db, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
            ):
                await asyncio.sleep(0.05)


async def test_a_blob_shared_by_photos_on_two_shards_outlives_either(client: Client) -> None:
    first, second = _shards(client)
    alice = await signup(client, "alice")
    nina = await signup(client, "nina")
    same = imaging.jpeg_bytes(80, 60)
    mine = await upload_ready(client, alice, same)
    theirs = await upload_ready(client, nina, same)
    assert client.app[keys.DATABASES].of_id(int(mine["id"])) is first
    assert client.app[keys.DATABASES].of_id(int(theirs["id"])) is second
    keys_of = await _blob_keys(second, int(theirs["id"]))
    assert keys_of == await _blob_keys(first, int(mine["id"]))  # content-addressed: shared
    blobs = client.app[keys.BLOBS]

    resp = await client.delete(f"/api/v1/photos/{mine['id']}", headers=bearer(alice))
    assert resp.status == 204
    await _jobs_settled(client)
    for key in keys_of:
        assert await blobs.stat(key) is not None, key  # nina's photo on the other shard uses it
    assert (await client.get(theirs["urls"]["large"])).status == 200

    resp = await client.delete(f"/api/v1/photos/{theirs['id']}", headers=bearer(nina))
    assert resp.status == 204
    await _jobs_settled(client)
    for key in keys_of:
        assert await blobs.stat(key) is None, key  # nobody uses it now


async def _blob_keys(db: Databases, photo_id: int) -> set[str]:
    row = await db.primary.pool.fetchrow(
        "SELECT upload_key, original_key, large_key, medium_key, thumb_key "
        "FROM photos WHERE id = $1",
        photo_id,
    )
    assert row is not None
    return {str(value) for value in row.values()}


async def _inbox_kinds(client: Client, token: str) -> list[str]:
    body = await (await client.get("/api/v1/notifications", headers=bearer(token))).json()
    return [str(n["kind"]) for n in body["items"]]


async def test_a_new_photos_followers_are_told_on_their_shards_once(
    client: Client, shard_clusters: ShardClusters
) -> None:
    first, second = _shards(client)
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    nina = await signup(client, "nina")
    photo = await upload_ready(client, alice, imaging.jpeg_bytes(40, 40))
    await _jobs_settled(client)
    ids = {name: await _user_id(client, name) for name in ("alice", "bob", "nina")}
    # Bob (alice's shard) and nina (the other) follow alice now. The rows are
    # written as the follow service keeps them: one on each side.
    for follower in ("bob", "nina"):
        for db in {first, client.app[keys.DATABASES].of_user(ids[follower])}:
            await db.primary.pool.execute(
                "INSERT INTO follows (id, follower_id, followee_id) "
                "VALUES (picshare_next_id($3), $1, $2)",
                ids[follower],
                ids["alice"],
                shard_of(ids[follower]),
            )
    published: list[int] = []

    async def listener(user_id: int, event: dict[str, Any]) -> None:
        published.append(user_id)

    client.app[keys.BUS].subscribe(listener)
    # The photo-ready job again, with nina's shard down.
    await asyncio.to_thread(shard_clusters.clusters[1].stop)
    async with first.transaction() as conn:
        await client.app[keys.JOBS].enqueue(conn, NOTIFY_JOB, {"photo_id": int(photo["id"])})
    client.app[keys.JOBS].wake()
    async with asyncio.timeout(15):
        while not published:  # pushed once its shard's transaction committed
            await asyncio.sleep(0.05)
    assert await _inbox_kinds(client, bob) == ["photo"]  # told at once, not after nina
    assert published == [ids["bob"]]
    status = await _value(first, "SELECT status FROM jobs WHERE kind = $1", NOTIFY_JOB)
    assert status != "done"  # retried until nina's shard has hers too

    await asyncio.to_thread(shard_clusters.heal)
    await _jobs_settled(client)
    assert await _value(first, "SELECT status FROM jobs WHERE kind = $1", NOTIFY_JOB) == "done"
    assert await _inbox_kinds(client, nina) == ["photo"]
    assert await _inbox_kinds(client, bob) == ["photo"]  # the retry told bob nothing twice
    assert sorted(published) == sorted([ids["bob"], ids["nina"]])
    note = await _value(second, "SELECT id FROM notifications WHERE user_id = $1", ids["nina"])
    assert shard_of(note) == shard_of(ids["nina"])
    # The upload on the way there, for completeness: a second photo tells both at once.
    resp = await upload(client, alice, imaging.jpeg_bytes(44, 44))
    assert resp.status == 201
    await _jobs_settled(client)
    assert await _inbox_kinds(client, nina) == ["photo", "photo"]

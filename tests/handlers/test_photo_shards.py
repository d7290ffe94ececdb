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
from tests.conftest import (
    AiohttpClient,
    bearer,
    sharded_settings,
    signup,
    upload,
    upload_ready,
)
from tests.shard_harness import ShardClusters
from tests.sharded import jobs_settled

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

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
    settings = sharded_settings(
        tmp_path / "data",
        shard_dsns,
        {"shard_router": "range", "connect_timeout": 2.0, "pool_max": 5},
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

    # Anyone, from the database (not the cache): only the second serves.
    await client.app[keys.CACHED_READS].photo_changed(photo_id)
    resp = await client.get(f"/api/v1/photos/{photo_id}")
    assert resp.status == 200 and (await resp.json())["id"] == photo["id"]
    assert _served(resp) and set(_served(resp)) == {SECOND}
    # Its owner: the viewer's flags from the photo's shard too.
    resp = await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(nina))
    assert resp.status == 200 and SECOND in _served(resp)
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
    assert inbox["unread_count"] == 2
    resp = await client.post("/api/v1/notifications/read", json={}, headers=bearer(nina))
    assert (await resp.json()) == {"marked": 2, "unread_count": 0}

    seen = await (await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(alice))).json()
    assert seen["liked_by_me"] is True and seen["comment_count"] == 1
    # Whatever is cached (neither entry, the photo's alone, both), the photo's
    # shard is asked once: a missing entry is read with the viewer's flags.
    cached = client.app[keys.CACHED_READS]
    await cached.photo_changed(photo_id)
    await cached.users_changed(await _user_id(client, "nina"))
    for _ in range(3):
        resp = await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(alice))
        assert (await resp.json())["liked_by_me"] is True
        assert _served(resp).count(SECOND) == 1, _served(resp)
    listed = await (await client.get(f"/api/v1/photos/{photo_id}/comments")).json()
    assert [c["text"] for c in listed["items"]] == ["hello"]
    # The comment found by its id alone, deleted by its author.
    resp = await client.delete(f"/api/v1/comments/{comment_id}", headers=bearer(alice))
    assert resp.status == 204
    resp = await client.delete(f"/api/v1/photos/{photo_id}/like", headers=bearer(alice))
    assert (await resp.json())["like_count"] == 0
    assert await _value(second, "SELECT count(*) FROM likes") == 0
    assert await _value(second, "SELECT comment_count FROM photos") == 0


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
    await jobs_settled(client.app)
    for key in keys_of:
        assert await blobs.stat(key) is not None, key  # nina's photo on the other shard uses it
    assert (await client.get(theirs["urls"]["large"])).status == 200

    resp = await client.delete(f"/api/v1/photos/{theirs['id']}", headers=bearer(nina))
    assert resp.status == 204
    await jobs_settled(client.app)
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
    nina = await signup(client, "nina")
    bob = await signup(client, "bob")
    oscar = await signup(client, "oscar")
    photo = await upload_ready(client, nina, imaging.jpeg_bytes(40, 40))
    await jobs_settled(client.app)
    ids = {name: await _user_id(client, name) for name in ("nina", "bob", "oscar")}
    # Bob (the first shard) and oscar (nina's, the second) follow nina now.
    # The rows as the follow service keeps them: one on each side.
    for follower in ("bob", "oscar"):
        for db in {second, client.app[keys.DATABASES].of_user(ids[follower])}:
            await db.primary.pool.execute(
                "INSERT INTO follows (id, follower_id, followee_id) "
                "VALUES (picshare_next_id($3), $1, $2)",
                ids[follower],
                ids["nina"],
                shard_of(ids[follower]),
            )
    published: list[int] = []

    async def listener(user_id: int, event: dict[str, Any]) -> None:
        published.append(user_id)

    client.app[keys.BUS].subscribe(listener)
    # The photo-ready job again (on the photo's shard), with bob's shard down:
    # the shard it writes first, so the others must not wait for it.
    await asyncio.to_thread(shard_clusters.clusters[0].stop)
    async with second.transaction() as conn:
        job = await client.app[keys.JOBS].enqueue(conn, NOTIFY_JOB, {"photo_id": int(photo["id"])})
    client.app[keys.JOBS].wake()
    async with asyncio.timeout(15):
        while not published:  # pushed once its shard's transaction committed
            await asyncio.sleep(0.05)
    assert published == [ids["oscar"]]  # told at once, not after bob
    told = await second.primary.pool.fetch("SELECT id, user_id, kind FROM notifications")
    assert [(n["user_id"], n["kind"]) for n in told] == [(ids["oscar"], "photo")]
    assert shard_of(told[0]["id"]) == shard_of(ids["oscar"])
    # Retried until bob's shard has his too.
    assert await _value(second, "SELECT status FROM jobs WHERE id = $1", job) != "done"

    await asyncio.to_thread(shard_clusters.heal)
    await jobs_settled(client.app)
    assert await _value(second, "SELECT status FROM jobs WHERE id = $1", job) == "done"
    assert await _inbox_kinds(client, bob) == ["photo"]
    assert await _inbox_kinds(client, oscar) == ["photo"]  # the retry told oscar nothing twice
    assert sorted(published) == sorted([ids["bob"], ids["oscar"]])
    note = await _value(first, "SELECT id FROM notifications WHERE user_id = $1", ids["bob"])
    assert shard_of(note) == shard_of(ids["bob"])
    # A new photo, end to end: both told at once.
    resp = await upload(client, nina, imaging.jpeg_bytes(44, 44))
    assert resp.status == 201
    newer = (await resp.json())["id"]
    await jobs_settled(client.app)
    assert await _inbox_kinds(client, bob) == ["photo", "photo"]
    assert await _inbox_kinds(client, oscar) == ["photo", "photo"]
    # The first deleted: its notifications go on both shards (bob's by a job).
    resp = await client.delete(f"/api/v1/photos/{photo['id']}", headers=bearer(nina))
    assert resp.status == 204
    await jobs_settled(client.app)
    for token in (bob, oscar):
        body = await (await client.get("/api/v1/notifications", headers=bearer(token))).json()
        assert [n["photo_id"] for n in body["items"]] == [newer]

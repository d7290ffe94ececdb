"""The LIKES table group in a database of its own
(`PICSHARE_DATABASE_GROUP_LIKES_URL`), a fresh empty one: a like is written
there, `liked_by_me` is read from there for single photos and whole pages,
the photo's like_count (and the owner's notification) follow by a job and
converge, a deleted photo's likes go by a job; nothing is written where the
users and photos live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from picshare import keys, photo_counts
from picshare.app import create_app
from picshare.jobs import JobRunner
from storage import photos_repo
from storage.table_groups import EVERY_DATABASE, TABLES
from tests import imaging
from tests.conftest import AiohttpClient, bearer, signup, upload_ready
from tests.groups_apart import count, empty_database, settings_apart, until
from tests.harness import PostgresForTests, tables_of

Client = TestClient[Any, Any]


@pytest.fixture
async def likes_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    async with empty_database(postgres, "likes") as url:
        yield url


@pytest.fixture
async def client(
    tmp_path: Path,
    database_url: str,
    likes_url: str,
    media_pool: Any,
    aiohttp_client: AiohttpClient,
) -> Client:
    """An app whose likes live in `likes_url`."""
    settings = settings_apart(tmp_path / "data", database_url, "likes", likes_url)
    made: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return made


async def test_likes_in_their_own_database(client: Client, likes_url: str) -> None:
    shards = client.app[keys.DATABASES]
    assert shards.likes is not None and shards.likes not in shards.physical
    star, fan = await signup(client, "star"), await signup(client, "fan")
    fans = [await signup(client, f"fan{n}") for n in range(4)]
    assert (await client.put("/api/v1/users/star/follow", headers=bearer(fan))).status == 200
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    pid = photo["id"]

    resp = await client.put(f"/api/v1/photos/{pid}/like", headers=bearer(fan))
    assert resp.status == 200
    assert await resp.json() == {"like_count": 1, "liked": True}

    async def seen(token: str, path: str = f"/api/v1/photos/{pid}") -> tuple[int, bool]:
        got = await client.get(path, headers=bearer(token))
        assert got.status == 200, await got.text()
        body = await got.json()
        item = body["items"][0] if "items" in body else body
        return item["like_count"], item["liked_by_me"]

    # The count follows by a job; liked_by_me is the likes' database's, at once.
    assert await until(lambda: seen(fan), (1, True)) == (1, True)
    assert await seen(star) == (1, False)
    # Pages: one query to the likes' database each, composed in the service.
    for path in ("/api/v1/photos", "/api/v1/feed", "/api/v1/users/star/photos"):
        assert await seen(fan, path) == (1, True), path
        assert await seen(star, path) == (1, False), path
    # The owner is told once (the count job's transaction, on the photo's shard).
    notes = await client.get("/api/v1/notifications", headers=bearer(star))
    assert [n["kind"] for n in (await notes.json())["items"]] == ["like", "follow"]

    # A repeat changes nothing; many at once all count.
    again = await client.put(f"/api/v1/photos/{pid}/like", headers=bearer(fan))
    assert await again.json() == {"like_count": 1, "liked": True}
    await asyncio.gather(
        *(client.put(f"/api/v1/photos/{pid}/like", headers=bearer(t)) for t in fans)
    )
    assert await until(lambda: seen(star), (5, False)) == (5, False)

    resp = await client.delete(f"/api/v1/photos/{pid}/like", headers=bearer(fan))
    assert await resp.json() == {"like_count": 4, "liked": False}
    assert await until(lambda: seen(fan), (4, False)) == (4, False)
    assert await count(likes_url, "SELECT count(*) FROM likes") == 4

    # The group's tables and what every database has; no users, no photos.
    assert await tables_of(likes_url) == TABLES["likes"] | EVERY_DATABASE
    # Nothing was written where the photos live (the suite's template has
    # its own, unused, likes table).
    for db in shards.physical:
        async with db.read() as conn:
            assert await conn.fetchval("SELECT count(*) FROM likes") == 0

    # The photo deleted: its likes go too, by a job.
    assert (await client.delete(f"/api/v1/photos/{pid}", headers=bearer(star))).status == 204

    async def left() -> int:
        return await count(likes_url, "SELECT count(*) FROM likes")

    assert await until(left, 0) == 0


@pytest.mark.one_pass
async def test_a_failed_like_leaves_nothing(
    client: Client, likes_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    star, fan = await signup(client, "star"), await signup(client, "fan")
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))

    async def failing(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("the like's job could not be enqueued")

    # The like's row and its count job are one transaction: neither stays.
    monkeypatch.setattr(JobRunner, "enqueue", failing)
    with pytest.raises(RuntimeError):
        await client.app[keys.SOCIAL].like(int(photo["id"]), await _user(client, "fan"))
    monkeypatch.undo()
    assert await count(likes_url, "SELECT count(*) FROM likes") == 0
    assert await count(likes_url, "SELECT count(*) FROM jobs") == 0

    # A photo the liker may not see: 404, and nothing written either.
    assert (await client.patch("/api/v1/me", json={"private": True}, headers=bearer(star))).ok
    resp = await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
    assert resp.status == 404
    assert await count(likes_url, "SELECT count(*) FROM likes") == 0


async def _user(client: Client, username: str) -> Any:
    user = await client.app[keys.CACHED_READS].user_by_name(username)
    assert user is not None
    return user


@pytest.mark.one_pass
async def test_count_jobs_count_once_in_any_order(client: Client) -> None:
    """A count job run twice counts once; a removal's job run before its
    addition's fails (to run again) and changes nothing meanwhile."""
    star = await signup(client, "star")
    photo = await upload_ready(client, star, imaging.jpeg_bytes(32, 32))
    photo_id = int(photo["id"])
    shards = client.app[keys.DATABASES]
    added, removed = photo_counts.payload(photo_id, 1), photo_counts.payload(photo_id, -1)

    async def apply(data: dict[str, Any]) -> bool:
        async def then(*_args: Any) -> None:
            return None

        return await photo_counts.apply(
            db=shards,
            notifier=client.app[keys.NOTIFIER],
            job="test.count",
            column=photos_repo.LIKE_COUNT,
            data=data,
            then=then,
        )

    async def count() -> int | None:
        async with shards.of_id(photo_id).read() as conn:
            return await photos_repo.count(conn, photo_id, photos_repo.LIKE_COUNT, 0)

    with pytest.raises(photo_counts.CountBehind):
        await apply(removed)
    assert await count() == 0
    assert await apply(added) is False
    assert await apply(added) is False  # a rerun: its key is recorded
    assert await count() == 1
    await apply(removed)  # its retry, now after the addition
    assert await count() == 0
    # The photo gone: the job says so (its caller then forgets the rows).
    assert (await client.delete(f"/api/v1/photos/{photo_id}", headers=bearer(star))).ok
    assert await apply(photo_counts.payload(photo_id, 1)) is True

"""Fixtures: real PostgreSQL, the app on a test client, users and uploads."""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from picshare.config import Settings, load_settings
from picshare.media import create_media_pool
from tests.harness import (
    PAYMENTS_OF,
    REQUIRE_SERVICES,
    SHARDS_OF,
    TEST_SHARDS,
    PostgresForTests,
    start_postgres,
    with_database,
)
from tests.redis_harness import redis_server
from tests.replication_harness import Replicated, Replication
from tests.s3_harness import moto_s3, new_bucket_name
from tests.shard_harness import ShardClusters

AiohttpClient = Any  # pytest-aiohttp's factory fixture has no public type


# The fixtures through which a test's databases are made: only these see
# PICSHARE_TEST_SHARDS (tests/harness.py).
DATABASE_FIXTURES = frozenset({"database_url", "postgres"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The sharded pass leaves out tests that make no database: they would
    run exactly as in the first pass (images, settings, parsers, caches)."""
    if TEST_SHARDS < 2:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        used = getattr(item, "fixturenames", ())
        (keep if DATABASE_FIXTURES.intersection(used) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    # Its own folder, not pytest's basetemp: pytest prunes old basetemps, which
    # would pull the data directory from under a server another run still uses.
    folder = Path(tempfile.mkdtemp(prefix="picshare-test-pg-"))
    admin_dsn, server = start_postgres(folder)
    # As many made in advance as one test's `database_url` takes.
    pg = PostgresForTests(admin_dsn, ahead=TEST_SHARDS + (TEST_SHARDS > 1))
    asyncio.run(pg.create_template())
    try:
        yield pg
    finally:
        asyncio.run(pg.drop_template())
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def replication() -> Iterator[Replication]:
    """A primary and two streaming replicas on free ports (tests/replication_harness.py)."""
    clusters = Replication.start()
    try:
        yield clusters
    finally:
        clusters.close()


@pytest.fixture
async def replicated(replication: Replication) -> AsyncIterator[Replicated]:
    """A fresh migrated database on the primary, already on both replicas;
    every server running and replaying again first."""
    await replication.heal()
    name = await replication.create_database()
    yield Replicated(replication, name)
    await replication.heal()
    await replication.drop_database(name)


@pytest.fixture(scope="session")
def shard_clusters() -> Iterator[ShardClusters]:
    """Two PostgreSQL clusters, one per physical shard (tests/shard_harness.py)."""
    clusters = ShardClusters.start(2)
    try:
        yield clusters
    finally:
        clusters.close()


@pytest.fixture
async def shard_dsns(shard_clusters: ShardClusters) -> AsyncIterator[list[str]]:
    """A fresh empty database on each shard cluster (migrated when opened)."""
    shard_clusters.heal()
    dsns = await shard_clusters.create_databases()
    yield dsns
    shard_clusters.heal()
    await shard_clusters.drop_databases(dsns)


@pytest.fixture(scope="session")
def redis_service() -> Iterator[str | None]:
    with redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_service: str | None) -> str:
    """A Redis URL with an empty database, or a skip (a failure in CI)."""
    if redis_service is None:
        if REQUIRE_SERVICES:
            pytest.fail("no Redis: set PICSHARE_TEST_REDIS_URL or install redis-server")
        pytest.skip("no Redis server available")
    import redis

    client = redis.Redis.from_url(redis_service)
    client.flushdb()
    client.close()
    return redis_service


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, one per session (tests/s3_harness.py)."""
    with moto_s3() as url:
        yield url


@pytest.fixture
async def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on it."""
    from aiobotocore.session import get_session

    name = new_bucket_name()
    async with get_session().create_client("s3", endpoint_url=s3_endpoint) as s3:
        await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def media_pool() -> Iterator[ProcessPoolExecutor]:
    pool = create_media_pool(2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
async def database_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    """A fresh migrated database; with PICSHARE_TEST_SHARDS=N, the first of N,
    which settings made by make_settings shard across (tests/harness.py)."""
    sharded = TEST_SHARDS > 1
    # Sharded, the PAYMENTS table group gets a database of its own too.
    names = [await postgres.create_database() for _ in range(TEST_SHARDS + sharded)]
    urls = tuple(with_database(postgres.admin_dsn, name) for name in names)
    if sharded:
        SHARDS_OF[urls[0]] = urls[:-1]
        PAYMENTS_OF[urls[0]] = urls[-1]
    yield urls[0]
    SHARDS_OF.pop(urls[0], None)
    PAYMENTS_OF.pop(urls[0], None)
    for name in names:
        postgres.drop_later(name)


def make_settings(data_dir: Path, database_url: str, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, dict[str, Any]] = {
        "server": {"data_dir": str(data_dir), "secret_key": "test-secret-key-0123456789"},
        "database": (
            {
                "url": "",
                "shards": SHARDS_OF[database_url],
                "group_payments_url": PAYMENTS_OF[database_url],
                "pool_max": 5,
            }
            if database_url in SHARDS_OF
            else {"url": database_url, "pool_max": 5}
        ),
        "jobs": {"poll_interval": 0.2, "lease_seconds": 5, "backoff_base": 1.1},
        # The suite signs up, likes and uploads in bursts from 127.0.0.1: the
        # limiter stays on, with room for that. tests/handlers/test_ratelimit.py
        # checks the real defaults.
        "ratelimit": dict.fromkeys(("uploads", "login", "writes", "reads"), "1000000/60s"),
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(env={}, overrides=overrides)


def sharded_settings(
    data_dir: Path,
    dsns: list[str],
    database: dict[str, Any] | None = None,
    **sections: dict[str, Any],
) -> Settings:
    """Settings of an app sharded across `dsns` (the first also the catalog)."""
    shards = {"url": "", "shards": tuple(dsns), **(database or {})}
    return make_settings(data_dir, "", database=shards, **sections)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def app(settings: Settings, media_pool: ProcessPoolExecutor) -> web.Application:
    return create_app(settings, media_pool=media_pool)


@pytest.fixture
async def client(app: web.Application, aiohttp_client: AiohttpClient) -> TestClient[Any, Any]:
    # `app` first: its database is set up before, and dropped after, the client.
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


async def signup(client: TestClient[Any, Any], username: str = "alice") -> str:
    """Create a user over the API; return its bearer token."""
    resp = await client.post(
        "/api/v1/auth/signup",
        json={
            "username": username,
            "email": f"{username}@example.com",
            "password": "correct horse",
        },
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return str(body["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(
    client: TestClient[Any, Any],
    token: str,
    data: bytes,
    *,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    caption: str = "",
    tags: str = "",
    path: str = "/api/v1/upload",
) -> Any:
    form = FormData()
    form.add_field("caption", caption)
    form.add_field("tags", tags)
    # A file object: aiohttp refuses large `bytes` values in a form.
    form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    return await client.post(path, data=form, headers=bearer(token))


async def wait_ready(
    client: TestClient[Any, Any], token: str, photo_id: str, timeout: float = 30
) -> dict[str, Any]:
    """Poll until the photo's renditions exist, and the search index has it
    as it now is (the `search` consumer of its events has run)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(token))
        body: dict[str, Any] = await resp.json()
        if body.get("status") != "processing":
            await search_indexed(client.app, int(photo_id), deadline)
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"photo {photo_id} still processing after {timeout}s")
        await asyncio.sleep(0.1)


async def search_indexed(app: web.Application, photo_id: int, deadline: float) -> None:
    """Poll until a ready photo's search index row says ready too (its
    `photo.ready` event consumed). A photo in any other state is not waited
    for: moderation's later verdicts write no event the index follows."""
    sql = (
        "SELECT (SELECT status FROM photos WHERE id = $1) IS DISTINCT FROM 'ready' "
        "OR (SELECT status FROM search_photos WHERE id = $1) = 'ready'"
    )
    pool = app[keys.DATABASES].photos_of(photo_id).primary.pool
    while not await pool.fetchval(sql, photo_id):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"photo {photo_id} not in the search index in time")
        await asyncio.sleep(0.02)


async def upload_ready(client: TestClient[Any, Any], token: str, data: bytes) -> dict[str, Any]:
    """Upload and wait for the renditions; return the ready photo."""
    resp = await upload(client, token, data)
    assert resp.status == 201, await resp.text()
    return await wait_ready(client, token, (await resp.json())["id"])

"""Cached reads stay right: every kind of write invalidates what it changed.

TTLs are set long, so a missing invalidation would show as a stale answer.
Runs with the in-process cache and with Redis; and with Redis stopped
mid-run, requests still succeed from the database.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from tests.conftest import bearer, signup, upload_ready
from tests.harness import missing_service

LONG = {"photo_ttl": 3600, "profile_ttl": 3600, "feed_ttl": 3600, "public_ttl": 3600}


@pytest.fixture(params=["memory", "redis"])
async def cached_client(
    request: pytest.FixtureRequest, settings: Any, media_pool: Any, aiohttp_client: Any
) -> TestClient[Any, Any]:
    redis = {"url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    tuned = settings.replace(cache=LONG, redis=redis)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(tuned, media_pool=media_pool))
    return client


async def test_each_write_invalidates_what_it_changed(cached_client: TestClient[Any, Any]) -> None:
    client = cached_client
    owner = await signup(client, "cacheowner")
    fan = await signup(client, "cachefan")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(32, 32))
    url = f"/api/v1/photos/{photo['id']}"

    async def get(path: str, token: str | None = None) -> Any:
        resp = await client.get(path, headers=bearer(token) if token else {})
        return await resp.json() if resp.status == 200 else resp.status

    assert (await get(url))["like_count"] == 0  # now cached
    await client.put(f"{url}/like", headers=bearer(fan))
    assert (await get(url))["like_count"] == 1
    assert (await get(url, fan))["liked_by_me"] is True
    await client.post(f"{url}/comments", json={"text": "hi"}, headers=bearer(fan))
    assert (await get(url))["comment_count"] == 1
    profile = await get("/api/v1/users/cacheowner")
    assert profile["follower_count"] == 0
    await client.put("/api/v1/users/cacheowner/follow", headers=bearer(fan))
    assert (await get("/api/v1/users/cacheowner"))["follower_count"] == 1
    assert (await get("/api/v1/users/cachefan"))["following_count"] == 1
    feed = await get("/api/v1/feed", fan)
    assert [p["id"] for p in feed["items"]] == [photo["id"]]  # follow bumped the feed
    await client.patch("/api/v1/me", json={"display_name": "New Name"}, headers=bearer(owner))
    assert (await get(url))["owner"]["display_name"] == "New Name"
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    stranger = await signup(client, "cachestranger")
    assert await get(url, stranger) == 404  # privacy follows the profile at once
    assert (await get(url, fan))["id"] == photo["id"]  # the follower still sees it
    await client.delete(url, headers=bearer(owner))
    assert await get(url, owner) == 404
    assert (await get("/api/v1/users/cacheowner"))["photo_count"] == 0


async def test_the_public_front_page_changes_with_its_photos(
    cached_client: TestClient[Any, Any],
) -> None:
    """The signed-out first page is cached whole: a photo joining or leaving it,
    or its owner's name or privacy changing, shows at once all the same."""
    client = cached_client

    async def front() -> list[tuple[str, str]]:
        body = await (await client.get("/api/v1/photos")).json()
        return [(p["id"], p["owner"]["display_name"]) for p in body["items"]]

    owner = await signup(client, "frontowner")
    assert await front() == []  # now cached, empty
    first = await upload_ready(client, owner, imaging.jpeg_bytes(32, 32))
    assert await front() == [(first["id"], "frontowner")]
    second = await upload_ready(client, owner, imaging.jpeg_bytes(40, 40))
    assert await front() == [(second["id"], "frontowner"), (first["id"], "frontowner")]
    await client.patch("/api/v1/me", json={"display_name": "Front"}, headers=bearer(owner))
    assert await front() == [(second["id"], "Front"), (first["id"], "Front")]
    await client.delete(f"/api/v1/photos/{second['id']}", headers=bearer(owner))
    assert await front() == [(first["id"], "Front")]
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(owner))
    assert await front() == []
    # Signed in, the page is read for that viewer (liked_by_me), not from the shared entry.
    await client.patch("/api/v1/me", json={"private": False}, headers=bearer(owner))
    await client.put(f"/api/v1/photos/{first['id']}/like", headers=bearer(owner))
    mine = await (await client.get("/api/v1/photos", headers=bearer(owner))).json()
    assert [(p["id"], p["liked_by_me"], p["like_count"]) for p in mine["items"]] == [
        (first["id"], True, 1)
    ]


async def test_hits_and_misses_reach_metrics(cached_client: TestClient[Any, Any]) -> None:
    token = await signup(cached_client, "metered")
    photo = await upload_ready(cached_client, token, imaging.jpeg_bytes(32, 32))
    for _ in range(3):
        await cached_client.get(f"/api/v1/photos/{photo['id']}")
    text = await (await cached_client.get("/metrics")).text()
    assert 'picshare_cache_requests_total{cache="picshare",result="hit"}' in text
    assert 'picshare_cache_recomputes_total{cache="picshare"}' in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_stopped_mid_run_requests_still_succeed(
    settings: Any, media_pool: Any, aiohttp_client: Any
) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server is not installed")
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="picshare-cache-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.3)
        tuned = settings.replace(cache=LONG, redis={"url": f"redis://127.0.0.1:{port}/0"})
        client = await aiohttp_client(create_app(tuned, media_pool=media_pool))
        token = await signup(client, "outage")
        photo = await upload_ready(client, token, imaging.jpeg_bytes(32, 32))
        url = f"/api/v1/photos/{photo['id']}"
        assert (await client.get(url)).status == 200
        proc.terminate()
        proc.wait(10)
        for _ in range(3):
            resp = await client.get(url)
            assert resp.status == 200  # from the database
        await client.put(f"{url}/like", headers=bearer(token))
        assert (await (await client.get(url)).json())["like_count"] == 1
        assert "picshare_cache_errors_total" in await (await client.get("/metrics")).text()
        assert client.app[keys.REDIS] is not None
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)

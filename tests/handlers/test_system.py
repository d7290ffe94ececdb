"""The /system page and /api/v1/system: the running site's processes (heard
through the process registry), databases, queues, cache and sockets; shown
to admins, or to anyone on this machine not coming through a proxy."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from picshare.app import create_app
from tests.conftest import AiohttpClient, bearer, make_settings, signup

Client = TestClient[Any, Any]
FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


async def test_from_this_machine_it_shows_the_site(client: Client) -> None:
    token = await signup(client, "someone")
    await client.get("/api/v1/users/someone")  # a cache lookup or two
    resp = await client.get("/api/v1/system")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    [me] = body["processes"]
    assert me["kind"] == "web" and me["pid"] > 0 and me["age_seconds"] < 5
    assert me["in_flight"] >= 1  # this very request
    assert body["databases"] and all(d["up"] for d in body["databases"])
    assert {d["role"] for d in body["databases"]} == {"primary"}
    assert body["queues"]["outbox_backlog"] >= 0 and body["queues"]["jobs_queued"] >= 0
    assert body["cache"]["hits"] + body["cache"]["misses"] >= 1
    assert body["sockets"] == 0
    page = await client.get("/system", headers=bearer(token))
    assert page.status == 200
    html = await page.text()
    assert "Processes" in html and "Databases" in html and 'id="jobs"' in html


async def test_through_a_proxy_only_admins_see_it(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    settings = make_settings(tmp_path / "data", database_url, server={"admins": ["Boss"]})
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    boss, other = await signup(client, "boss"), await signup(client, "other")
    refused = await client.get("/api/v1/system", headers=FORWARDED)
    assert refused.status == 403
    assert refused.content_type == "application/problem+json"
    assert (
        await client.get("/api/v1/system", headers={**FORWARDED, **bearer(other)})
    ).status == 403
    browser = {**FORWARDED, **bearer(other), "Accept": "text/html"}
    page = await client.get("/system", headers=browser)
    assert page.status == 403 and page.content_type == "text/html"
    allowed = await client.get("/api/v1/system", headers={**FORWARDED, **bearer(boss)})
    assert allowed.status == 200


async def test_with_redis_every_process_sees_the_others(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    def app() -> Any:
        settings = make_settings(tmp_path / "data", database_url, redis={"url": redis_url})
        return create_app(settings, media_pool=media_pool)

    first: Client = await aiohttp_client(app())
    second: Client = await aiohttp_client(app())

    async def kinds() -> list[str]:
        body = await (await first.get("/api/v1/system")).json()
        return [p["kind"] for p in body["processes"]]

    async with asyncio.timeout(10):
        while await kinds() != ["web", "web"]:
            await asyncio.sleep(0.1)
    await second.close()  # a clean stop leaves the registry at once
    assert await kinds() == ["web"]


async def test_through_trusted_proxies_a_local_client_is_local(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    settings = make_settings(
        tmp_path / "data", database_url, server={"trusted_proxies": ["127.0.0.1"]}
    )
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    # nginx on this machine, then the gateway, passing on a local client.
    local = {"X-Forwarded-For": "127.0.0.1, 127.0.0.1"}
    assert (await client.get("/api/v1/system", headers=local)).status == 200
    # A client elsewhere, even one claiming loopback first: the first hop
    # not trusted is the client.
    assert (await client.get("/api/v1/system", headers=FORWARDED)).status == 403
    spoofed = {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}
    assert (await client.get("/api/v1/system", headers=spoofed)).status == 403

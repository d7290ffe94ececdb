"""Health, readiness, OpenAPI and docs; what an operator reads off a
response (Server-Timing) and off /metrics."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from handlers.openapi import template_path
from tests.conftest import signup
from tests.harness import TEST_SHARDS

Client = TestClient[Any, Any]


async def test_health_and_ready(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    checks = (await resp.json())["checks"]
    # Sharded (PICSHARE_TEST_SHARDS), each shard's primary is named as well,
    # and the PAYMENTS table group's own database.
    shards = (
        {
            **{f"shard-{i}/primary": "ok" for i in range(1, TEST_SHARDS + 1)},
            "group-payments/primary": "ok",
        }
        if TEST_SHARDS > 1
        else {}
    )
    assert checks == {"database": "ok", "blobs": "ok", **shards}


async def test_openapi_describes_every_route(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    described = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    for resource in client.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or ""
        if "directory" in info:  # the static folder
            path = info["prefix"] + "/{filename}"
        clean = template_path(path)
        for route in resource:
            if route.method == "HEAD":
                continue
            assert (route.method, clean) in described, f"{route.method} {clean} undocumented"
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op["responses"], path


async def test_docs_page_lists_operations(client: Client) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    text = await resp.text()
    assert "/api/v1/upload" in text and "/api/v1/auth/signup" in text


async def test_request_id_is_echoed(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert resp.headers["X-Request-ID"] != "bad id <script>"


async def test_router_errors_pass_the_request_layer(client: Client) -> None:
    """The app has no aiohttp middlewares (the request layer wraps each
    handler), and the router's 404 and 405 still pass that layer: problem
    details or a browser's error page, the exact `Allow`, the layer's headers."""
    assert not client.app.middlewares
    html = {"Accept": "text/html"}
    resp = await client.post("/healthz")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET,HEAD"
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 405
    for name in ("X-Request-ID", "Server-Timing", "X-Content-Type-Options"):
        assert name in resp.headers, name
    resp = await client.post("/api/v1/photos/1")
    assert (resp.status, resp.headers["Allow"]) == (405, "DELETE,GET,HEAD")
    page = await client.delete("/", headers=html)
    assert (page.status, page.content_type) == (405, "text/html")
    assert page.headers["Allow"] == "GET,HEAD"
    assert "Method Not Allowed" in await page.text()
    missing = await client.get("/nope", headers=html)
    assert (missing.status, missing.content_type) == (404, "text/html")
    assert "Allow" not in missing.headers
    static = await client.post("/static/app.css")
    assert (static.status, static.headers["Allow"]) == (405, "GET,HEAD")
    assert (await client.get("/static/app.css")).headers["X-Content-Type-Options"] == "nosniff"


async def test_metrics_count_requests_per_route(client: Client) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/nope")
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert 'picshare_http_requests_total{method="GET",route="healthz",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "picshare_jobs_queue_depth" in text
    assert "picshare_http_request_seconds_bucket" in text
    # The scrape itself is being served while it is rendered.
    assert "picshare_http_requests_in_flight 1.0" in text
    assert "picshare_database_connections_in_use" in text


_TIMING = re.compile(r'(\w+)(?:;desc="([^"]*)")?;dur=(\d+\.\d\d)')


def timings(resp: Any) -> list[tuple[str, str, float]]:
    header = resp.headers["Server-Timing"]
    return [(name, desc, float(dur)) for name, desc, dur in _TIMING.findall(header)]


async def test_server_timing_says_where_the_time_went(client: Client) -> None:
    await signup(client, "alice")
    first = await client.get("/api/v1/users/alice")
    assert first.status == 200
    entries = timings(first)
    names = [name for name, _, _ in entries]
    # The profile came from the database (named, as CONTRACT.md says), through
    # the cache (two misses: the name's id, then the account), was rendered
    # as JSON; the total covers them all.
    assert "db" in names and names[-1] == "total"
    assert any(n == "cache" and d.endswith("misses=2") for n, d, _ in entries), entries
    assert "render" in names
    total = entries[-1][2]
    assert all(dur <= total for name, _, dur in entries if name in ("db", "render"))
    again = await client.get("/api/v1/users/alice")
    entries = timings(again)
    # A cache hit names no database.
    assert [n for n, _, _ in entries if n == "db"] == []
    assert any(n == "cache" and d == "hits=2 misses=0" for n, d, _ in entries), entries

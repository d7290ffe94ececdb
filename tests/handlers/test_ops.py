"""Health, readiness, OpenAPI and docs."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from handlers.openapi import template_path
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

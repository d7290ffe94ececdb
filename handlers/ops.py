"""Operations: liveness, readiness, the OpenAPI document and its viewer."""

from __future__ import annotations

import asyncio
import logging

import aiohttp_jinja2
from aiohttp import web

from handlers.jsonio import json_response
from handlers.openapi import build_spec
from picshare import keys
from picshare.metrics import CONTENT_TYPE_LATEST
from storage import jobs_repo

log = logging.getLogger(__name__)
READY_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when every backing store answers (within a timeout each)."""
    checks: dict[str, str] = {}

    async def database() -> None:
        async with request.app[keys.DB_POOL].acquire(timeout=READY_TIMEOUT) as conn:
            await conn.fetchval("SELECT 1", timeout=READY_TIMEOUT)

    for name, probe in (("database", database), ("blobs", request.app[keys.BLOBS].ping)):
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness: %s failed: %s", name, exc)
            checks[name] = f"failing: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: requests and latency per route, jobs, sockets, cache, limits."""
    registry = request.app[keys.METRICS]
    async with request.app[keys.DB_POOL].acquire(timeout=READY_TIMEOUT) as conn:
        registry.jobs_queued.set(await jobs_repo.queue_depth(conn))
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(build_spec(request.app))


@aiohttp_jinja2.template("docs.html")
async def docs(request: web.Request) -> dict[str, object]:
    return {"spec": build_spec(request.app)}

"""Operations: liveness, readiness, the OpenAPI document and its viewer."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from handlers.jsonio import json_response
from handlers.openapi import build_spec
from picshare import keys
from picshare.health import OK
from picshare.metrics import CONTENT_TYPE_LATEST


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when every backing store answers (within a timeout each)."""
    checks = await request.app[keys.HEALTH].readiness()
    ok = all(v == OK for v in checks.values())
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: requests and latency per route, jobs, sockets, cache, limits."""
    registry = request.app[keys.METRICS]
    registry.jobs_queued.set(await request.app[keys.HEALTH].jobs_queued())
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(build_spec(request.app))


@aiohttp_jinja2.template("docs.html")
async def docs(request: web.Request) -> dict[str, object]:
    return {"spec": build_spec(request.app)}

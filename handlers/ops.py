"""Operations: liveness, readiness, the OpenAPI document and its viewer."""

from __future__ import annotations

import time
from dataclasses import asdict

import aiohttp_jinja2
from aiohttp import web

from handlers.auth import current_user
from handlers.jsonio import json_response
from handlers.openapi import build_spec
from handlers.pages import render
from handlers.proxies import through_trusted_proxy
from picshare import keys
from picshare.errors import Forbidden
from picshare.health import OK
from picshare.metrics import CONTENT_TYPE_LATEST
from picshare.system import may_view


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the primary and the blob store answer (within a timeout each).

    A replica down or lagging leaves the site "degraded" but ready (reads go
    elsewhere); so does the primary down while a replica answers: the site
    serves reads (marked stale) and refuses writes, and a load balancer should
    keep sending it traffic rather than take every process out. With shards,
    one shard down is "degraded" too: the others serve, pages are partial."""
    health = request.app[keys.HEALTH]
    checks = await health.readiness()
    # Any database answering serves something: with shards, the others' users
    # get partial pages, and every process would see the same.
    answering = any(v == OK for k, v in checks.items() if k.endswith("primary") or "replica-" in k)
    if all(v == OK for v in checks.values()):
        status, code = "ok", 200
    elif checks.get("blobs") == OK and (checks.get("database") == OK or answering):
        status, code = "degraded", 200
    else:
        status, code = "unavailable", 503
    databases = [asdict(d) for d in health.databases()]
    return json_response({"status": status, "checks": checks, "databases": databases}, status=code)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: requests and latency per route, jobs, sockets, cache, limits."""
    registry = request.app[keys.METRICS]
    health = request.app[keys.HEALTH]
    registry.databases(health.databases())
    registry.jobs_queued.set(await health.jobs_queued())
    registry.outbox_backlog.set(await health.outbox_backlog())
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(build_spec(request.app))


@aiohttp_jinja2.template("docs.html")
async def docs(request: web.Request) -> dict[str, object]:
    return {"spec": build_spec(request.app)}


def _may_view_system(request: web.Request) -> None:
    # A forwarded request is local only if trusted proxies told us the client.
    forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    forwarded = forwarded and not through_trusted_proxy(request)
    admins = request.app[keys.SETTINGS].server.admins
    if not may_view(current_user(request), request.remote, forwarded, admins):
        raise Forbidden("the system page is for the site's admins, or from this machine")


async def system_json(request: web.Request) -> web.Response:
    """The running site: processes, databases, queues, cache, sockets."""
    _may_view_system(request)
    return json_response(await request.app[keys.SYSTEM].snapshot())


async def system_page(request: web.Request) -> web.Response:
    _may_view_system(request)
    snapshot = await request.app[keys.SYSTEM].snapshot()
    return await render(request, "system.html", system=snapshot, now=time.time())

"""REST: a user's webhook endpoints and their delivery logs (picshare/webhooks.py)."""

from __future__ import annotations

from aiohttp import web

from handlers.api_photos import limit_of
from handlers.auth import require_user
from handlers.jsonio import json_response, read_json_object
from handlers.serialize import list_body, webhook, webhook_delivery
from picshare import keys
from picshare.errors import NotFound
from storage.ids import parse_id


def endpoint_id_of(request: web.Request) -> int:
    endpoint_id = parse_id(request.match_info["id"])
    if endpoint_id is None:
        raise NotFound("no such webhook")
    return endpoint_id


async def create(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await read_json_object(request)
    created = await request.app[keys.WEBHOOKS].register(
        user.id, body.get("url"), body.get("events")
    )
    # The secret is in this answer only: the list never shows it again.
    return json_response({**webhook(created.endpoint), "secret": created.secret}, status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    user = require_user(request)
    found = await request.app[keys.WEBHOOKS].endpoints(user.id)
    return json_response({"items": [webhook(e) for e in found]})


async def delete(request: web.Request) -> web.Response:
    user = require_user(request)
    await request.app[keys.WEBHOOKS].delete(user.id, endpoint_id_of(request))
    return web.Response(status=204)


async def deliveries(request: web.Request) -> web.Response:
    user = require_user(request)
    page = await request.app[keys.WEBHOOKS].deliveries(
        user.id,
        endpoint_id_of(request),
        cursor=request.query.get("cursor"),
        limit=limit_of(request),
    )
    return json_response(list_body(page, [webhook_delivery(d) for d in page.items]))

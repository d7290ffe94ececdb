"""The moderation service's callback: `POST /api/v1/moderation/{id}` with its
verdict (picshare/moderation.py). It authenticates with the moderation token,
not a user's: the route reads no user credentials (handlers/routes.py)."""

from __future__ import annotations

from aiohttp import web

from handlers.api_photos import photo_id_of
from handlers.jsonio import json_response, read_json_object
from picshare import keys


async def verdict(request: web.Request) -> web.Response:
    moderation = request.app[keys.MODERATION]
    moderation.check_token(request.headers.get("Authorization"))
    photo_id = photo_id_of(request)
    body = await read_json_object(request)
    status = await moderation.record(photo_id, body.get("verdict"))
    return json_response({"id": str(photo_id), "verdict": body["verdict"], "status": status})

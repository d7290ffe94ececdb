"""The moderation service's side of the API (picshare/moderation.py): its
verdict, `POST /api/v1/moderation/{id}`, and the photo as uploaded, `GET
/api/v1/moderation/{id}/upload` (the one way to the upload's bytes: /media
serves renditions only, and a photo being moderated has none public). Both
authenticate with the moderation token, not a user's: the routes read no
user credentials (handlers/routes.py)."""

from __future__ import annotations

import contextlib

from aiohttp import web

from handlers.api_photos import photo_id_of
from handlers.jsonio import json_response, read_json_object
from picshare import keys
from picshare.errors import NotFound


async def verdict(request: web.Request) -> web.Response:
    moderation = request.app[keys.MODERATION]
    moderation.check_token(request.headers.get("Authorization"))
    photo_id = photo_id_of(request)
    body = await read_json_object(request)
    status = await moderation.record(photo_id, body.get("verdict"))
    return json_response({"id": str(photo_id), "verdict": body["verdict"], "status": status})


async def upload(request: web.Request) -> web.StreamResponse:
    moderation = request.app[keys.MODERATION]
    moderation.check_token(request.headers.get("Authorization"))
    key, mime = await moderation.upload_of(photo_id_of(request))
    store = request.app[keys.BLOBS]
    info = await store.stat(key)
    if info is None:
        raise NotFound("no such photo")
    response = web.StreamResponse(headers={"Cache-Control": "private, no-store"})
    response.content_type = mime
    response.content_length = info.size
    await response.prepare(request)
    # aclosing: a client that hangs up mid-stream must not leak the open blob.
    async with contextlib.aclosing(store.read(key)) as chunks:
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response

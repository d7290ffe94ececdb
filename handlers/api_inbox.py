"""REST: search and notifications."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.api_photos import limit_of, media_urls
from handlers.auth import require_user, viewer_id
from handlers.jsonio import json_response, read_json_object
from handlers.serialize import notification, photo, user_entry
from picshare import keys
from picshare.errors import invalid
from storage.ids import parse_id

SEARCH_LIMIT = 10


async def search(request: web.Request) -> web.Response:
    result = await request.app[keys.SEARCH].search(
        request.query.get("q"), viewer_id(request), limit=SEARCH_LIMIT
    )
    media = media_urls(request)
    body: dict[str, Any] = {
        "users": [user_entry(u) for u in result.users],
        "tags": [{"tag": t, "photo_count": n} for t, n in result.tags],
        "photos": [photo(p, urls=media) for p in result.photos],
    }
    if result.partial:
        body["partial"] = True  # a shard did not answer in time
    return json_response(body)


async def notifications(request: web.Request) -> web.Response:
    user = require_user(request)
    inbox = await request.app[keys.NOTIFICATIONS].inbox(
        user.id, cursor=request.query.get("cursor"), limit=limit_of(request)
    )
    return json_response(
        {
            "items": [notification(n) for n in inbox.page.items],
            "next_cursor": inbox.page.next_cursor,
            "unread_count": inbox.unread,
        }
    )


async def mark_read(request: web.Request) -> web.Response:
    """Mark all read, or those up to `up_to` (the newest id the client has shown)."""
    user = require_user(request)
    up_to: int | None = None
    if request.can_read_body:
        body = await read_json_object(request)
        raw = body.get("up_to")
        if raw is not None:
            up_to = parse_id(raw) if isinstance(raw, str) else None
            if up_to is None:
                raise invalid("up_to", "must be a notification id (a string of digits)")
    service = request.app[keys.NOTIFICATIONS]
    marked = await service.mark_read(user.id, up_to)
    return json_response({"marked": marked, "unread_count": await service.unread(user.id)})

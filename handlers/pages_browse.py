"""Pages for finding things: a tag's photos, search, and the notification inbox."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.auth import viewer_id
from handlers.pages import PAGE_SIZE, form_error, page_user, photos_of, read_form, render, see_other
from handlers.serialize import notification, user_entry
from picshare import keys
from picshare.errors import DomainError
from picshare.text import normalize_tag
from storage.ids import parse_id
from storage.records import NotificationKind

SEARCH_LIMIT = 12
NOTIFICATIONS_PAGE = 30


async def tag_page(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    page = await request.app[keys.PHOTOS].list_tagged(
        tag=tag, cursor=request.query.get("cursor"), limit=PAGE_SIZE, viewer_id=viewer_id(request)
    )
    return await render(
        request,
        "tag.html",
        tag=normalize_tag(tag),
        photos=photos_of(request, page.items),
        next_cursor=page.next_cursor,
    )


async def search_page(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if not query.strip():
        return await render(request, "search.html", values={"q": query}, result=None)
    try:
        found = await request.app[keys.SEARCH].search(query, viewer_id(request), limit=SEARCH_LIMIT)
    except DomainError as exc:
        return await form_error(request, "search.html", exc, {"q": query}, result=None)
    result: dict[str, Any] = {
        "users": [user_entry(u) for u in found.users],
        "tags": [{"tag": t, "photo_count": n} for t, n in found.tags],
        "photos": photos_of(request, found.photos),
    }
    return await render(request, "search.html", values={"q": query}, result=result)


def _link(n: dict[str, Any], me: str) -> str:
    """Where a notification leads: its photo, else the actor (requests: your profile)."""
    if n["photo_id"] is not None:
        return f"/p/{n['photo_id']}"
    if n["kind"] == NotificationKind.FOLLOW_REQUEST:
        return f"/u/{me}#requests"
    return f"/u/{n['actor']['username']}"


async def notifications_page(request: web.Request) -> web.StreamResponse:
    user = page_user(request)
    inbox = await request.app[keys.NOTIFICATIONS].inbox(
        user.id, cursor=request.query.get("cursor"), limit=NOTIFICATIONS_PAGE
    )
    items = [notification(n) for n in inbox.page.items]
    for item in items:
        item["link"] = _link(item, user.username)
    return await render(
        request,
        "notifications.html",
        notifications=items,
        next_cursor=inbox.page.next_cursor,
        # "Mark all read" marks what this page showed, not what arrived since.
        up_to=items[0]["id"] if items and not request.query.get("cursor") else "",
    )


async def mark_read(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    user = page_user(request, "/notifications")
    await request.app[keys.NOTIFICATIONS].mark_read(user.id, parse_id(form.get("up_to", "")))
    raise see_other("/notifications")

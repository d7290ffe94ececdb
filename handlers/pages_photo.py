"""The photo page and its forms: like, unlike, comment, delete a comment or the photo."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.api_photos import photo_id_of
from handlers.auth import viewer_id
from handlers.pages import (
    back_to,
    form_error,
    page_photo,
    page_user,
    read_form,
    render,
    see_other,
)
from handlers.serialize import comment
from picshare import keys, privacy
from picshare.errors import DomainError, NotFound
from storage.ids import parse_id

COMMENTS_PAGE = 50


async def _photo_context(request: web.Request, photo_id: int) -> dict[str, Any]:
    """The photo and one page of its comments (newest first), each marked deletable
    when the viewer wrote it or owns the photo."""
    viewer = viewer_id(request)
    found = await request.app[keys.PHOTOS].get(photo_id, viewer)
    page = await request.app[keys.SOCIAL].comments(
        photo_id, viewer, cursor=request.query.get("cursor"), limit=COMMENTS_PAGE
    )
    comments = [
        {**comment(c), "can_delete": privacy.can_delete_comment(c.user_id, found, viewer)}
        for c in page.items
    ]
    return {
        "photo": page_photo(found, urls=request.app[keys.MEDIA_URLS]),
        "mine": privacy.can_delete_photo(found, viewer),
        "comments": comments,
        "next_cursor": page.next_cursor,
    }


async def photo_page(request: web.Request) -> web.Response:
    context = await _photo_context(request, photo_id_of(request))
    return await render(request, "photo.html", values={}, **context)


def _liked_back(form: dict[str, str], photo_id: int) -> str:
    # Back to the page the button was on, scrolled to the photo's card.
    return f"{back_to(form, f'/p/{photo_id}')}#p-{photo_id}"


async def like(request: web.Request) -> web.StreamResponse:
    photo_id = photo_id_of(request)
    form = await read_form(request)
    user = page_user(request, back_to(form, f"/p/{photo_id}"))
    await request.app[keys.SOCIAL].like(photo_id, user)
    raise see_other(_liked_back(form, photo_id))


async def unlike(request: web.Request) -> web.StreamResponse:
    photo_id = photo_id_of(request)
    form = await read_form(request)
    user = page_user(request, back_to(form, f"/p/{photo_id}"))
    await request.app[keys.SOCIAL].unlike(photo_id, user)
    raise see_other(_liked_back(form, photo_id))


async def add_comment(request: web.Request) -> web.StreamResponse:
    photo_id = photo_id_of(request)
    form = await read_form(request)
    user = page_user(request, f"/p/{photo_id}")
    try:
        await request.app[keys.SOCIAL].add_comment(photo_id, user, form.get("text", ""))
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        context = await _photo_context(request, photo_id)
        return await form_error(request, "photo.html", exc, form, **context)
    raise see_other(f"/p/{photo_id}#comments")


async def delete_comment(request: web.Request) -> web.StreamResponse:
    comment_id = parse_id(request.match_info["id"])
    if comment_id is None:
        raise NotFound("no such comment")
    form = await read_form(request)
    user = page_user(request, back_to(form, "/"))
    await request.app[keys.SOCIAL].delete_comment(comment_id, user.id)
    raise see_other(back_to(form, "/"))


async def delete_photo(request: web.Request) -> web.StreamResponse:
    photo_id = photo_id_of(request)
    await read_form(request)
    user = page_user(request, f"/p/{photo_id}")
    await request.app[keys.PHOTOS].delete(photo_id, user.id)
    raise see_other(f"/u/{user.username}")

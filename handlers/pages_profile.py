"""Profile pages and their forms: follow, unfollow, follow requests; the settings page."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.auth import current_user, viewer_id
from handlers.pages import (
    PAGE_SIZE,
    back_to,
    form_error,
    page_user,
    photos_of,
    read_form,
    render,
    see_other,
)
from handlers.pages_webhooks import settings_context
from handlers.serialize import profile, user_entry
from picshare import keys
from picshare.errors import DomainError, Forbidden, NotFound

REQUESTS_SHOWN = 50


async def _profile_context(request: web.Request, username: str) -> dict[str, Any]:
    """The profile with counts; its photos when the viewer may see them, else
    only the "private account" note; the owner's pending follow requests."""
    viewer = viewer_id(request)
    found = await request.app[keys.SOCIAL].profile(username, viewer)
    context: dict[str, Any] = {
        "profile": profile(found),
        "mine": viewer == found.user.id,
        "photos": [],
        "next_cursor": None,
        "requests": [],
    }
    if found.can_see:
        try:
            page = await request.app[keys.PHOTOS].list_by_user(
                username=found.user.username,
                cursor=request.query.get("cursor"),
                limit=PAGE_SIZE,
                viewer_id=viewer,
            )
        except NotFound:
            # Unfollowed or made private since: the page shows the note instead.
            context["profile"]["can_see_photos"] = False
        else:
            context["photos"] = photos_of(request, page.items)
            context["next_cursor"] = page.next_cursor
    if context["mine"]:
        pending = await request.app[keys.SOCIAL].requests(
            found.user.id, cursor=None, limit=REQUESTS_SHOWN
        )
        context["requests"] = [user_entry(e) for e in pending.items]
    return context


async def profile_page(request: web.Request) -> web.Response:
    context = await _profile_context(request, request.match_info["username"])
    return await render(request, "profile.html", values={}, **context)


async def _follow_action(request: web.Request, *, follow: bool) -> web.StreamResponse:
    username = request.match_info["username"]
    form = await read_form(request)
    user = page_user(request, f"/u/{username}")
    social = request.app[keys.SOCIAL]
    try:
        if follow:
            await social.follow(username, user)
        else:
            await social.unfollow(username, user)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        context = await _profile_context(request, username)
        return await form_error(request, "profile.html", exc, form, **context)
    raise see_other(back_to(form, f"/u/{username}"))


async def follow(request: web.Request) -> web.StreamResponse:
    return await _follow_action(request, follow=True)


async def unfollow(request: web.Request) -> web.StreamResponse:
    return await _follow_action(request, follow=False)


async def _request_action(request: web.Request, *, approve: bool) -> web.StreamResponse:
    username = request.match_info["username"]
    await read_form(request)
    user = page_user(request, f"/u/{username}")
    if user.username != username.lower():
        raise Forbidden("only the account's owner can answer its follow requests")
    requester = request.match_info["requester"]
    social = request.app[keys.SOCIAL]
    if approve:
        await social.approve(user, requester)
    else:
        await social.decline(user, requester)
    raise see_other(f"/u/{user.username}")


async def approve_request(request: web.Request) -> web.StreamResponse:
    return await _request_action(request, approve=True)


async def decline_request(request: web.Request) -> web.StreamResponse:
    return await _request_action(request, approve=False)


def _settings_values(request: web.Request) -> dict[str, Any]:
    me = current_user(request)
    assert me is not None
    return {"display_name": me.display_name, "bio": me.bio, "private": me.private}


async def settings_page(request: web.Request) -> web.StreamResponse:
    user = page_user(request, "/settings")
    return await render(
        request,
        "settings.html",
        values=_settings_values(request),
        saved=request.query.get("saved") == "1",
        **await settings_context(request, user.id),
    )


async def settings_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    user = page_user(request, "/settings")
    # Browsers send a textarea's line breaks as CRLF; the service takes LF only.
    changes: dict[str, Any] = {
        k: form[k].replace("\r\n", "\n") for k in ("display_name", "bio") if k in form
    }
    # An unticked checkbox sends nothing: absence means "not private".
    changes["private"] = "private" in form
    try:
        await request.app[keys.USERS].update_profile(user.id, changes)
    except DomainError as exc:
        values = {**form, "private": changes["private"]}
        return await form_error(
            request, "settings.html", exc, values, **await settings_context(request, user.id)
        )
    raise see_other("/settings?saved=1")

"""The settings page's webhooks section: add an endpoint (its secret shown
once, on the page the form answers with) and delete one."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.pages import form_error, page_user, read_form, render, see_other
from picshare import keys
from picshare.domain_events import EVENT_TYPES
from picshare.errors import DomainError, NotFound
from storage.ids import parse_id

EVENT_FIELD = "event."  # one checkbox per type: `event.photo.liked=on`


async def settings_context(request: web.Request, user_id: int) -> dict[str, Any]:
    """What the settings page shows of the user's webhooks."""
    return {
        "webhooks": await request.app[keys.WEBHOOKS].endpoints(user_id),
        "event_types": sorted(EVENT_TYPES),
    }


async def add_webhook(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    user = page_user(request, "/settings")
    events = [t for t in sorted(EVENT_TYPES) if f"{EVENT_FIELD}{t}" in form]
    me = {"display_name": user.display_name, "bio": user.bio, "private": user.private}
    try:
        created = await request.app[keys.WEBHOOKS].register(user.id, form.get("url", ""), events)
    except DomainError as exc:
        return await form_error(
            request,
            "settings.html",
            exc,
            me,
            webhook_form={"url": form.get("url", ""), "events": events},
            **await settings_context(request, user.id),
        )
    # Rendered here, not redirected to: the secret must not travel in a URL,
    # and it is shown this once only.
    return await render(
        request,
        "settings.html",
        values=me,
        new_secret=created.secret,
        new_webhook=created.endpoint,
        **await settings_context(request, user.id),
    )


async def delete_webhook(request: web.Request) -> web.StreamResponse:
    await read_form(request)
    user = page_user(request, "/settings")
    endpoint_id = parse_id(request.match_info["id"])
    if endpoint_id is None:
        raise NotFound("no such webhook")
    await request.app[keys.WEBHOOKS].delete(user.id, endpoint_id)
    raise see_other("/settings")

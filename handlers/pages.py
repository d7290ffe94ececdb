"""HTML pages, server-rendered with aiohttp-jinja2: the shared helpers, the
account pages (sign-up, log-in, log-out), the home page and the upload form.

Forms work without JavaScript: each carries the CSRF token and answers with
POST-redirect-GET. The social pages live beside this module
(`pages_photo.py`, `pages_profile.py`, `pages_browse.py`).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from handlers import form_keys, sessions
from handlers.auth import current_user, viewer_id
from handlers.forms import read_fields
from handlers.problems import status_of
from handlers.ratelimit import limit_login
from handlers.serialize import photo
from handlers.upload_form import receive_upload
from picshare import keys, privacy
from picshare.errors import DomainError, Forbidden
from picshare.media_urls import MediaUrls
from picshare.staging import StagedUpload
from storage.records import PhotoRecord, UserRecord
from storage.scope import rendered

PAGE_SIZE = 24  # photos in a grid
FEED_SIZE = 12  # photo cards on the home feed


def _ago(iso_time: str) -> str:
    """'5 min' style age of a serialized timestamp (the exact time is in <time datetime>)."""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(iso_time)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return "now"


async def render(
    request: web.Request, template: str, *, status: int = 200, **values: Any
) -> web.Response:
    """A page with what every page needs: the viewer, the CSRF token, the unread count."""
    me = current_user(request)
    unread = await request.app[keys.NOTIFICATIONS].unread(me.id) if me is not None else 0
    context = {
        "request": request,
        "me": me,
        "csrf_token": request.get(keys.CSRF_TOKEN, ""),
        "unread": unread,
        "ago": _ago,
        **values,
    }
    started = time.perf_counter()
    page = aiohttp_jinja2.render_template(template, request, context, status=status)
    rendered(time.perf_counter() - started)  # Server-Timing's "render"
    return page


async def form_error(
    request: web.Request, template: str, exc: DomainError, values: dict[str, Any], **extra: Any
) -> web.Response:
    """The form again, with the error by its fields and the error's own status."""
    safe = {k: v for k, v in values.items() if k not in {"password", sessions.CSRF_FIELD}}
    return await render(
        request,
        template,
        status=status_of(exc),
        error=exc.detail,
        field_errors=exc.errors,
        values=safe,
        **extra,
    )


def check_csrf(request: web.Request, submitted: str | None) -> None:
    expected = request.get(keys.CSRF_TOKEN)
    if not expected or not sessions.csrf_matches(expected, submitted):
        raise Forbidden(
            "The form expired or came from another site. Reload the page and try again.",
            field=sessions.CSRF_FIELD,
        )


async def read_form(request: web.Request) -> dict[str, str]:
    """The form's text fields, after its CSRF token checked out (a bad body is a
    4xx from `forms.read_fields` first)."""
    fields = await read_fields(request)
    check_csrf(request, fields.get(sessions.CSRF_FIELD, ""))
    return fields


# A local path: one leading slash, then plain URL characters only. Anything
# else (//host, /\host, tabs that yarl would drop...) goes home instead, so the
# login form cannot be turned into an open redirect.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9_.~!$&'()*+,;=:@%/?-]*")


def local_path(candidate: str) -> str:
    return candidate if _LOCAL_PATH.fullmatch(candidate) else "/"


def back_to(form: dict[str, str], default: str) -> str:
    """Where a form goes after its POST: its local `next` field, else `default`."""
    candidate = form.get("next", "")
    return local_path(candidate) if candidate else default


def see_other(location: str) -> web.HTTPSeeOther:
    """POST-redirect-GET: raise it."""
    return web.HTTPSeeOther(location)


def login_first(next_path: str) -> web.HTTPSeeOther:
    return see_other("/login?" + urlencode({"next": local_path(next_path)}))


def page_user(request: web.Request, next_path: str | None = None) -> UserRecord:
    """The signed-in user; anyone else is sent to log in and come back."""
    user = current_user(request)
    if user is None:
        raise login_first(next_path or request.raw_path)
    return user


def photos_of(request: web.Request, records: list[PhotoRecord]) -> list[dict[str, Any]]:
    # Always the serializer's URLs: private accounts' media URLs are signed.
    media = request.app[keys.MEDIA_URLS]
    return [page_photo(p, urls=media) for p in records]


def page_photo(p: PhotoRecord, *, urls: MediaUrls) -> dict[str, Any]:
    """A photo as pages show it: the API's fields, and whether it takes likes
    and comments (the rule's answer, so templates need not decide)."""
    return {**photo(p, urls=urls), "can_react": privacy.can_react(p)}


def _signed_in(request: web.Request, token: str, location: str) -> web.HTTPSeeOther:
    """Redirect with a fresh session cookie (a new CSRF secret too: no fixation)."""
    response = web.HTTPSeeOther(location)
    sessions.set_cookie(
        response,
        sessions.new_session(token),
        secret=request.app[keys.SECRET_KEY],
        auth=request.app[keys.SETTINGS].auth,
        secure=request.secure,
    )
    return response


async def index(request: web.Request) -> web.Response:
    """The home feed when signed in, the newest public photos otherwise (and with
    `?view=new`, and below a feed that is still empty)."""
    photos = request.app[keys.PHOTOS]
    cursor = request.query.get("cursor")
    me = current_user(request)
    feed: list[dict[str, Any]] | None = None
    if me is not None and request.query.get("view") != "new":
        page = await photos.feed(viewer_id=me.id, cursor=cursor, limit=FEED_SIZE)
        feed = photos_of(request, page.items)
        if feed or cursor:
            return await render(request, "index.html", feed=feed, next_cursor=page.next_cursor)
    page = await photos.list_public(cursor=cursor, limit=PAGE_SIZE, viewer_id=viewer_id(request))
    return await render(
        request,
        "index.html",
        feed=feed,
        photos=photos_of(request, page.items),
        next_cursor=page.next_cursor,
        more_base="/?view=new&" if me is not None else "/?",
    )


async def signup_form(request: web.Request) -> web.Response:
    return await render(request, "signup.html", values={})


async def signup_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    try:
        result = await request.app[keys.USERS].signup(
            username=form.get("username", ""),
            email=form.get("email", ""),
            password=form.get("password", ""),
            kind="session",
        )
    except DomainError as exc:
        return await form_error(request, "signup.html", exc, form)
    raise _signed_in(request, result.token, "/")


async def login_form(request: web.Request) -> web.Response:
    return await render(request, "login.html", values={})


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    await limit_login(request, form.get("username", ""))  # a 429 page, not a form error
    try:
        result = await request.app[keys.USERS].login(
            username=form.get("username", ""), password=form.get("password", ""), kind="session"
        )
    except DomainError as exc:
        return await form_error(request, "login.html", exc, form)
    raise _signed_in(request, result.token, local_path(form.get("next", "/")))


async def logout_form(request: web.Request) -> web.Response:
    # GET never logs out (a link or an <img> could); it shows a button that POSTs.
    return await render(request, "logout.html")


async def logout_submit(request: web.Request) -> web.StreamResponse:
    await read_form(request)
    if request.get(keys.AUTH_KIND) == "session":
        await request.app[keys.USERS].logout(request[keys.CREDENTIAL])
    response = web.HTTPSeeOther("/")
    sessions.set_cookie(
        response,
        sessions.new_session(),
        secret=request.app[keys.SECRET_KEY],
        auth=request.app[keys.SETTINGS].auth,
        secure=request.secure,
    )
    raise response


async def upload_form(request: web.Request) -> web.StreamResponse:
    page_user(request, "/upload")
    return await render(
        request,
        "upload.html",
        values={},
        max_bytes=_max_bytes(request),
        form_key=form_keys.new_key(),
    )


def _max_bytes(request: web.Request) -> int:
    return request.app[keys.SETTINGS].uploads.max_bytes


async def upload_submit(request: web.Request) -> web.StreamResponse:
    user = page_user(request, "/upload")
    photos = request.app[keys.PHOTOS]
    values: dict[str, str] = {}
    try:
        async with StagedUpload(
            request.app[keys.BLOBS].writer(), limit=_max_bytes(request)
        ) as staged:
            form = await receive_upload(request, staged)
            values = {"caption": form.caption, "tags": form.tags}
            check_csrf(request, form.csrf_token)
            caption, tags = photos.check_text(form.caption, form.tags)

            async def create() -> str:
                created = await photos.create(
                    owner_id=user.id, staged=staged, caption=caption, tags=tags
                )
                return f"/p/{created.id}"

            # The form's own key: a double-clicked upload makes one photo. The
            # whole file has been read, so the fingerprint covers it: the same
            # form sent again with another photo is 422.
            location = await form_keys.once(
                request,
                user_id=user.id,
                form="upload",
                key=form.idempotency_key,
                fingerprint=f"{staged.sha256}\0{form.caption}\0{form.tags}",
                action=create,
            )
    except DomainError as exc:
        return await form_error(
            request,
            "upload.html",
            exc,
            values,
            max_bytes=_max_bytes(request),
            form_key=form_keys.new_key(),
        )
    raise see_other(location)

"""HTML pages, server-rendered with aiohttp-jinja2. Forms work without JavaScript:
each carries the CSRF token and answers with POST-redirect-GET."""

from __future__ import annotations

import re
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from handlers import sessions
from handlers.api_photos import photo_id_of
from handlers.auth import current_user, viewer_id
from handlers.serialize import photo
from handlers.upload_form import receive_upload
from picshare import keys
from picshare.errors import DomainError, Forbidden
from picshare.staging import StagedUpload

PAGE_SIZE = 24


def _context(request: web.Request, **values: Any) -> dict[str, Any]:
    return {
        "request": request,
        "me": current_user(request),
        "csrf_token": request.get(keys.CSRF_TOKEN, ""),
        **values,
    }


def _check_csrf(request: web.Request, submitted: str | None) -> None:
    expected = request.get(keys.CSRF_TOKEN)
    if not expected or not sessions.csrf_matches(expected, submitted):
        raise Forbidden(
            "The form expired or came from another site. Reload the page and try again.",
            field=sessions.CSRF_FIELD,
        )


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    _check_csrf(request, str(data.get(sessions.CSRF_FIELD, "")))
    return {k: v for k, v in data.items() if isinstance(v, str)}


# A local path: one leading slash, then plain URL characters only. Anything
# else (//host, /\host, tabs that yarl would drop...) goes home instead, so the
# login form cannot be turned into an open redirect.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9_.~!$&'()*+,;=:@%/?-]*")


def local_path(candidate: str) -> str:
    return candidate if _LOCAL_PATH.fullmatch(candidate) else "/"


def _redirect(request: web.Request, location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def _signed_in(request: web.Request, token: str, location: str) -> web.HTTPSeeOther:
    """Redirect with a fresh session cookie (a new CSRF secret too: no fixation)."""
    response = _redirect(request, location)
    sessions.set_cookie(
        response,
        sessions.new_session(token),
        secret=request.app[keys.SECRET_KEY],
        auth=request.app[keys.SETTINGS].auth,
        secure=request.secure,
    )
    return response


async def index(request: web.Request) -> web.Response:
    page = await request.app[keys.PHOTOS].list_public(
        cursor=request.query.get("cursor"),
        limit=PAGE_SIZE,
        viewer_id=viewer_id(request),
    )
    media = request.app[keys.MEDIA_URLS]
    return aiohttp_jinja2.render_template(
        "index.html",
        request,
        _context(
            request,
            photos=[photo(p, urls=media) for p in page.items],
            next_cursor=page.next_cursor,
        ),
    )


async def signup_form(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("signup.html", request, _context(request, values={}))


async def signup_submit(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        result = await request.app[keys.USERS].signup(
            username=form.get("username", ""),
            email=form.get("email", ""),
            password=form.get("password", ""),
            kind="session",
        )
    except DomainError as exc:
        return _form_error(request, "signup.html", exc, form)
    raise _signed_in(request, result.token, "/")


async def login_form(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("login.html", request, _context(request, values={}))


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    try:
        result = await request.app[keys.USERS].login(
            username=form.get("username", ""), password=form.get("password", ""), kind="session"
        )
    except DomainError as exc:
        return _form_error(request, "login.html", exc, form)
    raise _signed_in(request, result.token, local_path(form.get("next", "/")))


async def logout_form(request: web.Request) -> web.Response:
    # GET never logs out (a link or an <img> could); it shows a button that POSTs.
    return aiohttp_jinja2.render_template("logout.html", request, _context(request))


async def logout_submit(request: web.Request) -> web.StreamResponse:
    await _form(request)
    if request.get(keys.AUTH_KIND) == "session":
        await request.app[keys.USERS].logout(request[keys.CREDENTIAL])
    response = _redirect(request, "/")
    sessions.set_cookie(
        response,
        sessions.new_session(),
        secret=request.app[keys.SECRET_KEY],
        auth=request.app[keys.SETTINGS].auth,
        secure=request.secure,
    )
    raise response


async def upload_form(request: web.Request) -> web.StreamResponse:
    if current_user(request) is None:
        raise _redirect(request, "/login?next=/upload")
    return aiohttp_jinja2.render_template(
        "upload.html", request, _context(request, values={}, max_bytes=_max_bytes(request))
    )


def _max_bytes(request: web.Request) -> int:
    return request.app[keys.SETTINGS].uploads.max_bytes


async def upload_submit(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    if user is None:
        raise _redirect(request, "/login?next=/upload")
    photos = request.app[keys.PHOTOS]
    values: dict[str, str] = {}
    try:
        async with StagedUpload(
            request.app[keys.BLOBS].spool_dir(), limit=_max_bytes(request)
        ) as staged:
            form = await receive_upload(request, staged)
            values = {"caption": form.caption, "tags": form.tags}
            _check_csrf(request, form.csrf_token)
            caption, tags = photos.check_text(form.caption, form.tags)
            created = await photos.create(
                owner_id=user.id, staged=staged, caption=caption, tags=tags
            )
    except DomainError as exc:
        return _form_error(request, "upload.html", exc, values, max_bytes=_max_bytes(request))
    raise _redirect(request, f"/p/{created.id}")


async def photo_page(request: web.Request) -> web.Response:
    found = await request.app[keys.PHOTOS].get(photo_id_of(request), viewer_id(request))
    media = request.app[keys.MEDIA_URLS]
    return aiohttp_jinja2.render_template(
        "photo.html", request, _context(request, photo=photo(found, urls=media))
    )


def _form_error(
    request: web.Request, template: str, exc: DomainError, values: dict[str, str], **extra: Any
) -> web.Response:
    from handlers.problems import status_of

    safe = {k: v for k, v in values.items() if k not in {"password", sessions.CSRF_FIELD}}
    return aiohttp_jinja2.render_template(
        template,
        request,
        _context(request, error=exc.detail, field_errors=exc.errors, values=safe, **extra),
        status=status_of(exc),
    )

"""The middleware chain: request id -> errors -> authentication (+ CSRF).

Every error of an API request leaves as RFC 9457 problem details, including
the router's 404 and 405 and anything unexpected (a 500 with no traceback);
a browser asking for HTML gets an error page instead.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from handlers import problems, sessions
from picshare import keys
from picshare.errors import DomainError, Forbidden, Unauthenticated

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NO_AUTH_PREFIXES = ("/media/", "/static/")
NO_AUTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def wants_html(request: web.Request) -> bool:
    if request.path.startswith(("/api/", "/media/")) or request.path in {
        "/openapi.json",
        "/healthz",
        "/readyz",
    }:
        return False
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route name (bounded label values)."""
    metrics = request.app[keys.METRICS]
    route = request.match_info.route.name or "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_latency.labels(route, request.method).observe(time.perf_counter() - started)
        metrics.http_requests.labels(route, request.method, str(status)).inc()


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[keys.REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-ID"] = request_id
        raise
    response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return _error_response(request, problems.status_of(exc), exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and 304s are answers, not errors
        return _http_error(request, exc)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _render(request, 500, "Something went wrong on our side; it has been logged.")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    detail = {
        404: "There is nothing at this address.",
        405: f"{request.method} is not allowed here.",
        413: "The request body is too large.",
    }.get(exc.status, exc.reason)
    response = _render(request, exc.status, detail)
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


def _error_response(request: web.Request, status: int, exc: DomainError) -> web.StreamResponse:
    if wants_html(request):
        return _render(request, status, exc.detail)
    return problems.from_domain(exc, instance=request.rel_url.raw_path)


def _render(request: web.Request, status: int, detail: str) -> web.StreamResponse:
    if wants_html(request):
        return aiohttp_jinja2.render_template(
            "error.html",
            request,
            {
                "request": request,
                "me": request.get(keys.USER),
                "csrf_token": request.get(keys.CSRF_TOKEN, ""),
                "status": status,
                "title": problems.title_of(status),
                "detail": detail,
            },
            status=status,
        )
    return problems.problem(status, detail, instance=request.rel_url.raw_path)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find who is asking: a bearer token, else the session cookie."""
    if request.path.startswith(NO_AUTH_PREFIXES) or request.path in NO_AUTH_PATHS:
        # Probes, static files and media: nobody's identity is needed (private
        # media carry their own signature), and no database work per request.
        return await handler(request)
    app = request.app
    users = app[keys.USERS]
    session: sessions.Session | None = None
    stale = False
    cookie_name = app[keys.SETTINGS].auth.session_cookie
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or not token.isascii():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        user = await users.authenticate(token.strip(), "api")
        if user is None:
            raise Unauthenticated("the token is unknown, expired or revoked")
        request[keys.USER] = user
        request[keys.AUTH_KIND] = "bearer"
        request[keys.CREDENTIAL] = token.strip()
    else:
        raw = request.cookies.get(cookie_name)
        session = sessions.unsign(raw, app[keys.SECRET_KEY]) if raw else None
        if session is not None and session.sid is not None:
            user = await users.authenticate(session.sid, "session")
            if user is not None:
                request[keys.USER] = user
                request[keys.AUTH_KIND] = "session"
                request[keys.CREDENTIAL] = session.sid
            else:
                # Expired or revoked: keep the CSRF secret (open forms still
                # work), drop the session id, and send the cookie again.
                session = sessions.Session(None, session.csrf)
                stale = True
        if (
            keys.USER in request
            and request.method in UNSAFE
            and request.path.startswith("/api/")
            and session is not None
            and not sessions.csrf_matches(session.csrf, request.headers.get(sessions.CSRF_HEADER))
        ):
            raise Forbidden(
                f"cookie-authenticated requests must send the {sessions.CSRF_HEADER} header",
                field=sessions.CSRF_HEADER,
            )
    # Anonymous browsers get a cookie (for the CSRF token of the login and
    # sign-up forms); API clients and media requests are left cookie-free.
    fresh = (
        session is None and not authorization and not request.path.startswith(("/api/", "/media/"))
    )
    if fresh:
        session = sessions.new_session()
    if session is not None:
        request[keys.CSRF_TOKEN] = session.csrf
    response = await handler(request)
    if (
        (fresh or stale)
        and session is not None
        and not response.prepared
        and not _sets_cookie(response, cookie_name)
    ):
        sessions.set_cookie(
            response,
            session,
            secret=app[keys.SECRET_KEY],
            auth=app[keys.SETTINGS].auth,
            secure=request.secure,
        )
    return response


def _sets_cookie(response: web.StreamResponse, name: str) -> bool:
    return name in response.cookies


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: headers every answer carries."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html":
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )

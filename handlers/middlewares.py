"""The middleware chain: observe (route, request id, metrics, errors) ->
authentication (+ CSRF); handlers/proxies.py (before observe) and
handlers/ratelimit.py (after authentication) add theirs when configured
(app.py).

Every error of an API request leaves as RFC 9457 problem details, including
the router's 404 and 405 and anything unexpected (a 500 with no traceback);
a browser asking for HTML gets an error page instead.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from handlers import log_context, problems, sessions
from handlers.route_info import info_of
from picshare import keys
from picshare.config import AuthSettings
from picshare.errors import DomainError, Forbidden, Unauthenticated, Unavailable
from picshare.internal_token import HEADER as INTERNAL_HEADER
from picshare.internal_token import InternalTokens, InvalidInternalToken
from picshare.metrics import Metrics
from picshare.routing import RouteTable
from storage import scope as db_scope
from storage.blobs import BlobStoreUnavailable
from storage.records import UserRecord
from storage.router import DatabaseUnavailable, ShardMoving

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A browser's own last-write WAL position (read-your-writes across processes
# without a shared store). Unsigned on purpose: a forged value can only send
# that browser's reads to the primary.
WAL_COOKIE = "picshare_wal"
# The position as plain hex: a "/" would make the cookie value quoted.
_LSN = re.compile(r"^[0-9a-f]{1,16}$")
_SHARD_NAME = re.compile(r"^shard-[0-9]{1,3}$")
_MAX_POSITIONS = 64


def wants_html(request: web.Request) -> bool:
    """A browser on a page route: errors render as an HTML page, not problem+json."""
    return request[keys.ROUTE].html_errors and "text/html" in request.headers.get("Accept", "")


def observe_middleware(table: RouteTable, metrics: Metrics, *, wal_cookie_ttl: int) -> Middleware:
    """The outermost layer: the route's metadata, a request id, the metrics,
    and the storage router's scope (which databases served: `Server-Timing`;
    read while the primary was down: `PicShare-Stale`; the browser's WAL cookie).

    Request ids are a random prefix, made once per app (so per process, after
    any fork), and a counter: unique without a uuid4 per request.
    """
    prefix = secrets.token_hex(6)
    counter = itertools.count(1)
    observe = metrics.observe_request
    requests = metrics.requests

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = info_of(table, request.match_info, request.path)
        request[keys.ROUTE] = info
        incoming = request.headers.get("X-Request-ID")
        request_id = (
            incoming
            if incoming is not None and _REQUEST_ID.match(incoming)
            else f"{prefix}{next(counter):x}"
        )
        request[keys.REQUEST_ID] = request_id
        # For this request's log lines (reset after: a connection's task serves many).
        logged_as = log_context.REQUEST_ID.set(request_id)
        wal = request.cookies.get(WAL_COOKIE)
        scope = db_scope.open_scope(_positions(wal) if wal else None)
        started = time.perf_counter()
        status = 500
        requests.in_flight += 1
        try:
            # Errors are answered here too (one frame less than a layer of
            # their own): problem details, or an error page for browsers.
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:  # redirects and 304s are answers, not errors
                    status = exc.status
                    exc.headers["X-Request-ID"] = request_id
                    security_headers(exc.headers)
                    if scope.served:  # a redirect after a form's write
                        _database_headers(request, exc.headers, scope, wal_cookie_ttl)
                    exc.headers["Server-Timing"] = _server_timing(
                        scope, time.perf_counter() - started
                    )
                    raise
                response = error_answer(request, exc)
            except Exception as exc:
                response = error_answer(request, exc)
            status = response.status
            if not response.prepared:
                headers = response.headers
                headers["X-Request-ID"] = request_id
                security_headers(headers)
                if not scope.stale and status < 400:
                    # A cache hit while the primary is down is as stale as a replica's read.
                    databases = request.app.get(keys.DATABASES)
                    scope.stale = databases is not None and databases.primary_down()
                if scope.served or scope.stale or scope.partial:
                    _database_headers(request, headers, scope, wal_cookie_ttl)
                elapsed = time.perf_counter() - started
                upstream = headers.get("Server-Timing")
                # A service's answer through the gateway keeps the service's
                # timings; the gateway adds its own whole time to them.
                headers["Server-Timing"] = (
                    _server_timing(scope, elapsed)
                    if upstream is None
                    else f"{upstream}, gateway;dur={elapsed * 1000:.2f}"
                )
            return response
        finally:
            requests.in_flight -= 1
            observe(info.name, request.method, status, time.perf_counter() - started)
            log_context.REQUEST_ID.reset(logged_as)

    return middleware


def _server_timing(scope: db_scope.Scope, total: float) -> str:
    """Where the request's time went, in milliseconds: each database use (its
    `desc` names the database, as CONTRACT.md says), the cache's round trips
    with its hits and misses, rendering (JSON or a page), and the total until
    the answer's head. Browsers show it in their network panel."""
    parts = [
        f'db;desc="{label}";dur={seconds * 1000:.2f}'
        for label, seconds in zip(scope.served, scope.db_seconds, strict=True)
    ]
    if scope.cache_hits or scope.cache_misses:
        parts.append(
            f'cache;desc="hits={scope.cache_hits} misses={scope.cache_misses}";'
            f"dur={scope.cache_seconds * 1000:.2f}"
        )
    if scope.render_seconds:
        parts.append(f"render;dur={scope.render_seconds * 1000:.2f}")
    parts.append(f"total;dur={total * 1000:.2f}")
    return ", ".join(parts)


def _database_headers(
    request: web.Request, headers: CIMultiDict[str], scope: db_scope.Scope, ttl: int
) -> None:
    if scope.stale:
        headers["PicShare-Stale"] = "1"
    if scope.partial:
        headers["PicShare-Partial"] = "1"
    # Browsers (pages, or the API with the session cookie) carry their last
    # write's position; API clients have their user's mark instead.
    if scope.wrote_lsn and (
        not request[keys.ROUTE].api or request.get(keys.AUTH_KIND) == "session"
    ):
        # What the browser had, raised by what this request wrote (per database).
        positions = {**scope.min_lsn}
        for name, lsn in scope.wrote_lsn.items():
            positions[name] = max(positions.get(name, 0), lsn)
        value = _cookie_value(positions)
        cookie = f"{WAL_COOKIE}={value}; Max-Age={ttl}; Path=/; HttpOnly; SameSite=Lax"
        if request.secure:
            cookie += "; Secure"
        headers.add("Set-Cookie", cookie)


def _positions(value: str) -> dict[str, int]:
    """The WAL cookie: a hex position ("1a2b3c", one database), or one per
    shard ("shard-1:1a2b|shard-2:ff"); anything malformed counts for nothing."""
    if _LSN.match(value):
        return {"": int(value, 16)}
    found: dict[str, int] = {}
    for part in value.split("|")[:_MAX_POSITIONS]:
        name, _, lsn = part.partition(":")
        if _SHARD_NAME.match(name) and _LSN.match(lsn):
            found[name] = int(lsn, 16)
    return found


def _cookie_value(positions: dict[str, int]) -> str:
    if set(positions) == {""}:
        return f"{positions['']:x}"
    return "|".join(f"{name}:{lsn:x}" for name, lsn in sorted(positions.items()) if name)


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to an error a handler raised. Call it in the `except` block
    (an unexpected error is logged with its traceback)."""
    if isinstance(exc, DomainError):
        return _error_response(request, problems.status_of(exc), exc)
    if isinstance(exc, DatabaseUnavailable):
        log.warning("%s %s: %s", request.method, request.path, exc)
        down = Unavailable(
            "This data is moving to another database; try again in a moment."
            if isinstance(exc, ShardMoving)
            else "The database is unavailable for a moment; try again shortly."
        )
        return _error_response(request, 503, down)
    if isinstance(exc, BlobStoreUnavailable):
        log.warning("%s %s: %s", request.method, request.path, exc)
        return _error_response(
            request, 503, Unavailable("The photo store is unavailable; try again shortly.")
        )
    if isinstance(exc, web.HTTPException):
        return _http_error(request, exc)
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


def auth_middleware(auth: AuthSettings, internal: InternalTokens | None = None) -> Middleware:
    """Find who is asking: a bearer token, else the session cookie.

    With `internal` (a service behind the gateway), only the gateway's
    internal token says who is asking (`_from_gateway`)."""
    cookie_name = auth.session_cookie

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request[keys.ROUTE]
        if not info.credentials:
            # Probes, static files and media: nobody's identity is needed (private
            # media carry their own signature), and no database work per request.
            return await handler(request)
        app = request.app
        users = app[keys.USERS]
        session: sessions.Session | None = None
        stale = False
        user: UserRecord | None = None
        authorization = request.headers.get("Authorization", "")
        if internal is not None:
            session, stale = await _from_gateway(request, internal, cookie_name)
            user = request.get(keys.USER)  # set there when the gateway named one
        elif authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip() or not token.isascii():
                raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
            user = await users.authenticate(token.strip(), "api")
            if user is None:
                raise Unauthenticated("the token is unknown, expired or revoked")
            request[keys.AUTH_KIND] = "bearer"
            request[keys.CREDENTIAL] = token.strip()
        else:
            raw = request.cookies.get(cookie_name)
            session = sessions.unsign(raw, app[keys.SECRET_KEY]) if raw else None
            if session is not None and session.sid is not None:
                user = await users.authenticate(session.sid, "session")
                if user is not None:
                    request[keys.AUTH_KIND] = "session"
                    request[keys.CREDENTIAL] = session.sid
                else:
                    # Expired or revoked: keep the CSRF secret (open forms still
                    # work), drop the session id, and send the cookie again.
                    session = sessions.Session(None, session.csrf)
                    stale = True
            if (
                user is not None
                and info.api
                and request.method in UNSAFE
                and session is not None
                and not sessions.csrf_matches(
                    session.csrf, request.headers.get(sessions.CSRF_HEADER)
                )
            ):
                raise Forbidden(
                    f"cookie-authenticated requests must send the {sessions.CSRF_HEADER} header",
                    field=sessions.CSRF_HEADER,
                )
        request[keys.USER] = user
        # Anonymous browsers get a cookie (for the CSRF token of the login and
        # sign-up forms); API clients and media requests are left cookie-free.
        fresh = session is None and not authorization and not info.api
        if fresh:
            session = sessions.new_session()
        if session is not None:
            request[keys.CSRF_TOKEN] = session.csrf
        if user is not None:
            scope = db_scope.current()
            if scope is not None:
                scope.actor = user.id  # whose writes the storage router remembers
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
                auth=auth,
                secure=request.secure,
            )
        return response

    return middleware


async def _from_gateway(
    request: web.Request, internal: InternalTokens, cookie_name: str
) -> tuple[sessions.Session | None, bool]:
    """Behind the gateway: the internal token names the user (the gateway
    checked the credential, and the CSRF header); a request without one is
    anonymous, whatever token or cookie it carries. The session cookie still
    gives the CSRF secret of the pages' forms. Returns the session and
    whether its cookie must be sent again (the gateway found it stale)."""
    raw = request.cookies.get(cookie_name)
    session = sessions.unsign(raw, request.app[keys.SECRET_KEY]) if raw else None
    token = request.headers.get(INTERNAL_HEADER)
    if token is None:
        return session, False
    try:
        claims = internal.verify(token, method=request.method, path=request.rel_url.raw_path)
    except InvalidInternalToken as exc:
        raise Unauthenticated(str(exc)) from None
    request[keys.PRECHECKED] = True
    request[keys.REQUEST_ID] = claims.request_id
    log_context.REQUEST_ID.set(claims.request_id)
    if claims.user_id is None:
        if session is not None and session.sid is not None:
            return sessions.Session(None, session.csrf), True
        return session, False
    user = await request.app[keys.USERS].get(claims.user_id)
    if user is None:
        raise Unauthenticated("the internal token names no user")
    request[keys.USER] = user
    kind = claims.auth_kind or "bearer"
    request[keys.AUTH_KIND] = kind
    # What logout revokes: the credential the gateway checked, as it came.
    if kind == "session" and session is not None and session.sid is not None:
        request[keys.CREDENTIAL] = session.sid
    else:
        _scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        request[keys.CREDENTIAL] = credential.strip() or request.query.get("token", "")
    return session, False


def _sets_cookie(response: web.StreamResponse, name: str) -> bool:
    """Whether the answer sets that cookie already: by the handler, or in the
    headers a service sent through the gateway (its session, not the gateway's)."""
    if name in response.cookies:
        return True
    prefix = f"{name}="
    return any(v.startswith(prefix) for v in response.headers.getall("Set-Cookie", ()))


CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def security_headers(headers: CIMultiDict[str]) -> None:
    """Headers every answer carries, and pages more. Set by `observe_middleware`
    on what leaves the chain; a handler that prepares its own response (media)
    calls it first. (Not an on_response_prepare signal: that costs a coroutine
    per response.)"""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if headers.get("Content-Type", "").startswith("text/html"):
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", CSP)

"""The request layer (`request_middleware`): the one middleware of every
role's app (handlers/proxies.py's goes before it when a trusted proxy is
configured), and who is asking (`identify`).

Errors leave as problem details or an error page (handlers/error_answers.py).
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.hdrs import AUTHORIZATION, COOKIE
from aiohttp.typedefs import Middleware
from aiohttp.web_urldispatcher import AbstractRoute
from multidict import CIMultiDict

from handlers import idempotency, log_context, ratelimit, sessions
from handlers.error_answers import error_answer, wants_html
from handlers.route_info import unmatched
from picshare import keys
from picshare.config import AuthSettings
from picshare.errors import DomainError, Forbidden, Unauthenticated
from picshare.internal_token import HEADER as INTERNAL_HEADER
from picshare.internal_token import InternalTokens, InvalidInternalToken
from picshare.metrics import Metrics
from picshare.ratelimit import Decision, Policies, Policy, RateLimiter
from picshare.routing import RouteInfo, RouteTable
from storage import scope as db_scope
from storage.records import UserRecord
from storage.shards import Shards

__all__ = [
    "error_answer",
    "identify",
    "layered",
    "request_middleware",
    "security_headers",
    "wants_html",
]

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


def layered(handler: Handler, chain: Sequence[Middleware]) -> Handler:
    """`handler` inside the chain (outermost first), as aiohttp would call it
    as the app's middlewares, but put together once, when the router is
    filled (handlers/routes.py), rather than per request; and without the
    layer aiohttp adds to any app with middlewares (it sets
    `match_info.current_app`, which matters only to sub-apps: PicShare has
    none). The router's 404 and 405 go through the chain by
    handlers/unmatched.py."""
    for middleware in reversed(chain):
        handler = functools.partial(middleware, handler=handler)
    return handler


def request_middleware(
    table: RouteTable,
    metrics: Metrics,
    *,
    auth: AuthSettings,
    internal: InternalTokens | None = None,
    policies: Policies | None = None,
    wal_cookie_ttl: int,
) -> Middleware:
    """The one layer every request passes (handlers/proxies.py's, when
    configured, goes before it). In order: the route's metadata, a request
    id, the storage router's scope (which databases served: `Server-Timing`;
    read while the primary was down: `PicShare-Stale`; the browser's WAL
    cookie) and the metrics; who is asking (`identify`); the rate limit of
    the route's class (handlers/ratelimit.py, with `policies`: None when
    limits are off); Idempotency-Key (handlers/idempotency.py) on the routes
    that take one; the handler.

    One layer rather than four: aiohttp wraps each middleware in a call and
    a coroutine of its own per request, and each asked again per request
    what the route table had said once. Each route's `Plan` is worked out
    on its first request from the table and kept; a step a route does not
    need costs it a flag test.

    Request ids are a random prefix, made once per app (so per process, after
    any fork), and a counter: unique without a uuid4 per request.
    """
    prefix = secrets.token_hex(6)
    counter = itertools.count(1)
    requests = metrics.requests
    observe = requests.observe
    plans: dict[AbstractRoute, Plan] = {}
    cookie_name = auth.session_cookie

    def plan_of(route: AbstractRoute, request: web.Request) -> Plan:
        app = request.app
        databases = app.get(keys.DATABASES)
        info = table.get(route)
        if info is None:  # the router's 404 and 405: a new route object each time
            return Plan(unmatched(request.path), None, None, databases)
        if policies is None or info.rate is None:
            plan = Plan(info, None, None, databases)
        else:
            plan = Plan(info, policies.of(info.rate), app[keys.RATE_LIMITER], databases)
        plans[route] = plan
        return plan

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        plan = plans.get(route)
        if plan is None:
            plan = plan_of(route, request)
        info = plan.info
        request[keys.ROUTE] = info
        request_headers = request.headers
        incoming = request_headers.get("X-Request-ID")
        request_id = (
            incoming
            if incoming is not None and _REQUEST_ID.match(incoming)
            else f"{prefix}{next(counter):x}"
        )
        request[keys.REQUEST_ID] = request_id
        # For this request's log lines (reset after: a connection's task serves many).
        logged_as = log_context.REQUEST_ID.set(request_id)
        has_cookies = COOKIE in request_headers
        wal = request.cookies.get(WAL_COOKIE) if has_cookies else None
        scope = db_scope.open_scope(_positions(wal) if wal else None)
        started = time.perf_counter()
        status = 500
        requests.in_flight += 1
        try:
            # Errors are answered here too (one frame less than a layer of
            # their own): problem details, or an error page for browsers.
            try:
                renew: sessions.Session | None = None
                prechecked = False
                if info.credentials:
                    # Probes, static files and media skip this: nobody's identity
                    # is needed (private media carry their own signature).
                    if (
                        internal is None
                        and not has_cookies
                        and AUTHORIZATION not in request_headers
                    ):
                        renew = _anonymous(request, info)  # no database work, no coroutine
                    else:
                        renew, prechecked = await identify(request, info, auth, internal)
                # The rate limit of the route's class: every answer, success or
                # error, carries its fields; a refusal is a 429 without the handler.
                # Behind the gateway (prechecked), the gateway limited it already.
                decision: Decision | None = None
                limiter = plan.limiter
                if limiter is not None and not prechecked:
                    policy = plan.policy
                    assert policy is not None  # set with the limiter
                    decision = ratelimit.decide_now(request, limiter, policy, metrics)
                    if decision is None:  # the shared store: a round trip
                        decision = await ratelimit.decide(request, limiter, policy, metrics)
                try:
                    if decision is not None and not decision.allowed:
                        raise ratelimit.refusal(decision)
                    if plan.idempotent and not prechecked:
                        response = await idempotency.run(request, handler, info)
                    else:
                        response = await handler(request)
                except web.HTTPException as exc:  # redirects and the router's errors
                    if decision is not None:
                        ratelimit.set_headers(exc.headers, request[keys.RATELIMIT])
                    raise
                except DomainError as exc:
                    if decision is None:
                        raise
                    # Rendered here rather than below, by the same code, so that
                    # the error response can carry the limit's headers too.
                    response = error_answer(request, exc)
                if decision is not None and not response.prepared:
                    ratelimit.set_headers(response.headers, request[keys.RATELIMIT])
                if (
                    renew is not None
                    and not response.prepared
                    and not _sets_cookie(response, cookie_name)
                ):
                    sessions.set_cookie(
                        response,
                        renew,
                        secret=request.app[keys.SECRET_KEY],
                        auth=auth,
                        secure=request.secure,
                    )
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
                    databases = plan.databases
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


class Plan:
    """What a route's requests go through, and the app's parts they use,
    worked out on the route's first request (the app has started then)."""

    __slots__ = ("databases", "idempotent", "info", "limiter", "policy")

    def __init__(
        self,
        info: RouteInfo,
        policy: Policy | None,
        limiter: RateLimiter | None,
        databases: Shards | None,
    ) -> None:
        self.info = info
        self.policy = policy
        self.limiter = limiter  # None: not limited (or limits are off)
        self.idempotent = info.idempotency != "none"
        self.databases = databases


def _server_timing(scope: db_scope.Scope, total: float) -> str:
    """Where the request's time went, in milliseconds: each database use (its
    `desc` names the database, as CONTRACT.md says), the cache's round trips
    with its hits and misses, rendering (JSON or a page), and the total until
    the answer's head. Browsers show it in their network panel."""
    # Built as one string (no list and join): it is on every answer.
    text = ""
    if scope.served:
        text = ", ".join(
            f'db;desc="{label}";dur={seconds * 1000:.2f}'
            for label, seconds in zip(scope.served, scope.db_seconds, strict=True)
        )
        text += ", "
    if scope.cache_hits or scope.cache_misses:
        text += (
            f'cache;desc="hits={scope.cache_hits} misses={scope.cache_misses}";'
            f"dur={scope.cache_seconds * 1000:.2f}, "
        )
    if scope.render_seconds:
        text += f"render;dur={scope.render_seconds * 1000:.2f}, "
    return f"{text}total;dur={total * 1000:.2f}"


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


def _anonymous(request: web.Request, info: RouteInfo) -> sessions.Session | None:
    """`identify` for a request with no credential at all: no database work.
    A browser on a page gets a new session (its cookie is the CSRF secret of
    the log-in and sign-up forms); API clients are left cookie-free."""
    request[keys.USER] = None
    if info.api:
        return None
    session = sessions.new_session()
    request[keys.CSRF_TOKEN] = session.csrf
    return session


async def identify(
    request: web.Request, info: RouteInfo, auth: AuthSettings, internal: InternalTokens | None
) -> tuple[sessions.Session | None, bool]:
    """Find who is asking: a bearer token, else the session cookie.

    With `internal` (a service behind the gateway), only the gateway's
    internal token says who is asking (`_from_gateway`). Returns the session
    whose cookie the answer must (re)send (new, or found stale), and whether
    the gateway has already limited the request and checked its key."""
    app = request.app
    users = app[keys.USERS]
    cookie_name = auth.session_cookie
    session: sessions.Session | None = None
    stale = False
    user: UserRecord | None = None
    authorization = request.headers.get(AUTHORIZATION, "")
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
            and not sessions.csrf_matches(session.csrf, request.headers.get(sessions.CSRF_HEADER))
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
    prechecked = internal is not None and request.get(keys.PRECHECKED, False)
    return (session if fresh or stale else None), prechecked


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
    """Headers every answer carries, and pages more. Set by `request_middleware`
    on what leaves the chain; a handler that prepares its own response (media)
    calls it first. (Not an on_response_prepare signal: that costs a coroutine
    per response.)"""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if headers.get("Content-Type", "").startswith("text/html"):
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", CSP)

"""What the middlewares need to know of a route, resolved once at start-up.

The route table (handlers/routes.py) says of each route how its errors are
rendered, which rate-limit class it belongs to and whether the caller's
credentials are read. `register` turns that into one `RouteInfo` per aiohttp
route object (the HEAD twin of a GET included), so a request costs one dict
lookup instead of path-prefix tests and name parsing in every middleware.
Only requests that match no route (the router's 404 and 405) fall back to
their path, since no route can speak for them.
"""

from __future__ import annotations

from aiohttp.web_urldispatcher import AbstractResource, AbstractRoute

from picshare.ratelimit.policies import RateClass
from picshare.routing import Idempotency, RouteInfo, RouteTable

__all__ = ["RouteInfo", "RouteTable", "register", "register_static", "unmatched"]

READ_METHODS = frozenset({"GET", "HEAD"})


STATIC = RouteInfo("static", html_errors=True, api=False, credentials=False, rate=None)
_UNMATCHED_API = RouteInfo("unmatched", html_errors=False, api=True, credentials=True, rate=None)
_UNMATCHED_PAGE = RouteInfo("unmatched", html_errors=True, api=False, credentials=True, rate=None)
_UNMATCHED_MEDIA = RouteInfo(
    "unmatched", html_errors=False, api=False, credentials=False, rate=None
)


def register(
    table: RouteTable,
    route: AbstractRoute,
    *,
    name: str,
    surface: str,
    limit: str,
    credentials: bool,
    idempotency: Idempotency = "none",
    streamed_body: bool = False,
) -> None:
    """Record one aiohttp route under its table entry's metadata.

    Idempotency-Key applies to unsafe API routes only: reads are idempotent
    already, and page forms carry their own keys where they need them."""
    rate: RateClass | None
    if limit == "none":
        rate = None
    elif limit == "uploads":
        rate = "uploads"
    elif limit == "login":
        rate = "login"
    elif limit == "reads":
        rate = "reads"
    else:
        rate = "reads" if route.method in READ_METHODS else "writes"
    if route.method in READ_METHODS or surface != "api" or not credentials:
        idempotency = "none"  # no user to scope keys by without credentials
    table[route] = RouteInfo(
        name,
        html_errors=surface == "page",
        api=surface == "api",
        credentials=credentials,
        rate=rate,
        idempotency=idempotency,
        streamed_body=streamed_body,
    )


def register_static(table: RouteTable, resource: AbstractResource) -> None:
    for route in resource:
        table[route] = STATIC


def unmatched(path: str) -> RouteInfo:
    """For the router's own 404 and 405 answers: judged by the path, the only clue."""
    if path.startswith("/api/"):
        return _UNMATCHED_API
    if path.startswith(("/media/", "/static/")):
        return _UNMATCHED_MEDIA
    return _UNMATCHED_PAGE

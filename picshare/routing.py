"""What the app knows of each of its routes, as the middlewares read it.

The route table (handlers/routes.py) says it; handlers/route_info.py
resolves it once per aiohttp route at start-up into these records, kept
under `keys.ROUTE_INFO` and handed to each request as `keys.ROUTE`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp.web_urldispatcher import AbstractRoute

from picshare.ratelimit.policies import RateClass

__all__ = ["RouteInfo", "RouteTable"]


@dataclass(frozen=True, slots=True)
class RouteInfo:
    name: str  # the route's name without its alias suffix: the metrics label
    html_errors: bool  # a browser asking for HTML gets an error page
    api: bool  # cookie-authenticated unsafe requests must carry the CSRF header
    credentials: bool  # read the bearer token or session cookie
    rate: RateClass | None  # None: not rate limited
    # "required": an unsafe request without an Idempotency-Key is refused (400).
    idempotency: str = "optional"


RouteTable = dict[AbstractRoute, RouteInfo]

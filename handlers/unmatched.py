"""The router's last resource: every request no route takes (404, or 405 with
`Allow`), so that it passes the request layer like any other.

The request layer (handlers/middlewares.py) wraps each route's handler when
the router is filled, rather than running as an aiohttp middleware: aiohttp
then adds no layer of its own (`_fix_request_current_app`) and builds no
middleware chain per request. The router's own 404 and 405 answers would
pass no layer at all, so this resource takes them instead: it is indexed
under "/", the last prefix the router tries for any path, and registered
after every other resource, so it matches only what nothing else matched.
The router has forgotten by then which methods the path allows, so the
handler asks every other resource again (a 404 or 405 only) and raises
the error the router would have answered. A route added later (a test's,
wrapped by `keys.LAYER`) still comes first unless its path's only prefix
is "/".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import (
    AbstractResource,
    AbstractRoute,
    ResourceRoute,
    UrlMappingMatchInfo,
    _InfoDict,
)
from yarl import URL

from handlers.middlewares import Handler

__all__ = ["Unmatched"]


class Unmatched(AbstractResource):
    """Matches every path and method; its handler, inside `layer`, raises
    the router's 404 or 405."""

    def __init__(self, layer: Callable[[Handler], Handler]) -> None:
        super().__init__(name=None)
        # Not listed by `__iter__`: it is no route of the table, and the
        # OpenAPI document and the route checks see only the real ones.
        self._route = ResourceRoute(hdrs.METH_ANY, layer(self._answer), self)

    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        raise RuntimeError("no URL leads to the unmatched resource")

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("the unmatched resource belongs to the root app")

    def get_info(self) -> _InfoDict:
        return {}

    def raw_match(self, path: str) -> bool:
        return False

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        return UrlMappingMatchInfo({}, self._route), set()

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[AbstractRoute]:
        return iter(())

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource is not self:
                _match, methods = await resource.resolve(request)
                allowed |= methods
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

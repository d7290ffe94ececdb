"""The order resources are tried in: the hot reads first, and no answer changed."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from handlers.routes import ROUTES, setup_routes
from picshare.routing import RouteTable

_PLACEHOLDER = re.compile(r"\{[^}:]+\}")


def _app() -> web.Application:
    app = web.Application()
    routes: RouteTable = {}
    setup_routes(app, routes)
    return app


def _table_order_app() -> web.Application:
    """The router filled in the table's own order: what every path resolved to before."""
    app = web.Application()
    for route in ROUTES:
        for path in (route.path, *route.aliases):
            app.router.add_route(route.method, path, route.handler)
    return app


def test_photo_reads_come_before_the_routes_beside_them() -> None:
    order = [r.canonical for r in _app().router.resources()]
    assert order.index("/api/v1/photos") < order.index("/api/v1/photos/{id}/like")
    assert order.index("/api/v1/photos/{id}") < order.index("/api/v1/photos/{id}/like")
    assert order.index("/api/v1/photos/{id}") < order.index("/api/v1/photos/{id}/comments")


async def test_every_path_resolves_as_in_the_table_order() -> None:
    ours, before = _app(), _table_order_app()
    paths = {
        _PLACEHOLDER.sub("me", path)
        for route in ROUTES
        for path in (route.path, *route.aliases)
        if ":" not in path  # the media pattern: alone under its prefix
    }
    for method in sorted({route.method for route in ROUTES}):
        for path in sorted(paths):
            resolved = [
                await app.router.resolve(make_mocked_request(method, path, app=app))
                for app in (ours, before)
            ]
            got = [
                (m.route.method, m.route.resource and m.route.resource.canonical)
                if m.http_exception is None
                else m.http_exception.status
                for m in resolved
            ]
            assert got[0] == got[1], (method, path)

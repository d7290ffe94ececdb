"""The route table's word on each route, as the middlewares read it."""

from __future__ import annotations

import pytest
from aiohttp import web

from handlers.route_info import unmatched
from handlers.routes import setup_routes
from picshare.routing import RouteInfo, RouteTable


@pytest.fixture(scope="module")
def table() -> tuple[web.Application, RouteTable]:
    app = web.Application()
    routes: RouteTable = {}
    setup_routes(app, routes)
    return app, routes


def info(table: tuple[web.Application, RouteTable], name: str, method: str) -> RouteInfo:
    app, routes = table
    (route,) = [r for r in app.router[name] if r.method == method]
    return routes[route]


@pytest.mark.parametrize(
    ("route", "method", "rate"),
    [
        ("api.upload", "POST", "uploads"),
        ("api.upload.alias1", "POST", "uploads"),  # POST /api/v1/photos
        ("page.upload.submit", "POST", "uploads"),
        ("page.upload", "GET", "reads"),
        ("api.login", "POST", "login"),
        ("page.login.submit", "POST", "login"),
        ("api.signup", "POST", "login"),
        ("page.signup.submit", "POST", "login"),
        ("api.like", "PUT", "writes"),
        ("api.photo.delete.alias1", "DELETE", "writes"),
        ("api.me.update", "PATCH", "writes"),
        ("page.photo.like", "POST", "writes"),
        ("api.photos", "GET", "reads"),
        ("api.photos", "HEAD", "reads"),
        ("page.index", "GET", "reads"),
        ("healthz", "GET", None),
        ("readyz", "GET", None),
        ("metrics", "GET", None),
        ("media", "GET", None),
        ("static", "GET", None),
    ],
)
def test_rate_classes(
    table: tuple[web.Application, RouteTable], route: str, method: str, rate: str | None
) -> None:
    assert info(table, route, method).rate == rate


def test_every_route_is_described(table: tuple[web.Application, RouteTable]) -> None:
    app, routes = table
    for resource in app.router.resources():
        for route in resource:
            assert route in routes, route


def test_aliases_share_the_metric_label(table: tuple[web.Application, RouteTable]) -> None:
    assert info(table, "api.upload.alias1", "POST").name == "api.upload"


@pytest.mark.parametrize(
    ("route", "method", "html", "api", "credentials"),
    [
        ("api.photo", "GET", False, True, True),
        ("page.photo", "GET", True, False, True),
        ("page.index", "GET", True, False, True),
        ("docs", "GET", True, False, True),
        ("healthz", "GET", False, True, False),
        ("media", "GET", False, True, False),
        ("static", "GET", True, False, False),
    ],
)
def test_surfaces(
    table: tuple[web.Application, RouteTable],
    route: str,
    method: str,
    html: bool,
    api: bool,
    credentials: bool,
) -> None:
    got = info(table, route, method)
    assert (got.html_errors, got.api, got.credentials) == (html, api, credentials)


@pytest.mark.parametrize(
    ("path", "html", "credentials"),
    [("/api/v1/nope", False, True), ("/nope", True, True), ("/media/x", False, False)],
)
def test_unmatched_requests_go_by_path(path: str, html: bool, credentials: bool) -> None:
    got = unmatched(path)
    assert (got.html_errors, got.credentials, got.rate) == (html, credentials, None)

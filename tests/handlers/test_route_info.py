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


def info(table: tuple[web.Application, RouteTable], path: str, method: str) -> RouteInfo:
    _, routes = table
    (route,) = [
        r for r in routes if r.method == method and (r.resource and r.resource.canonical) == path
    ]
    return routes[route]


@pytest.mark.parametrize(
    ("path", "method", "rate"),
    [
        ("/api/v1/upload", "POST", "uploads"),
        ("/api/v1/photos", "POST", "uploads"),  # the alias of /api/v1/upload
        ("/upload", "POST", "uploads"),
        ("/upload", "GET", "reads"),
        ("/api/v1/auth/login", "POST", "login"),
        ("/login", "POST", "login"),
        ("/api/v1/auth/signup", "POST", "login"),
        ("/signup", "POST", "login"),
        ("/api/v1/photos/{id}/like", "PUT", "writes"),
        ("/api/v1/photos/{id}", "DELETE", "writes"),
        ("/api/v1/me", "PATCH", "writes"),
        ("/p/{id}/like", "POST", "writes"),
        ("/api/v1/photos", "GET", "reads"),
        ("/api/v1/photos", "HEAD", "reads"),
        ("/", "GET", "reads"),
        ("/healthz", "GET", None),
        ("/readyz", "GET", None),
        ("/metrics", "GET", None),
        ("/media/{key}", "GET", None),
        ("/static", "GET", None),
    ],
)
def test_rate_classes(
    table: tuple[web.Application, RouteTable], path: str, method: str, rate: str | None
) -> None:
    assert info(table, path, method).rate == rate


def test_every_route_is_described(table: tuple[web.Application, RouteTable]) -> None:
    app, routes = table
    for resource in app.router.resources():
        for route in resource:
            assert route in routes, route


def test_aliases_share_the_metric_label(table: tuple[web.Application, RouteTable]) -> None:
    assert info(table, "/api/v1/photos", "POST").name == "api.upload"
    assert info(table, "/api/v1/photos", "GET").name == "api.photos"  # one resource, two names


@pytest.mark.parametrize(
    ("path", "method", "html", "api", "credentials"),
    [
        ("/api/v1/photos/{id}", "GET", False, True, True),
        ("/p/{id}", "GET", True, False, True),
        ("/", "GET", True, False, True),
        ("/docs", "GET", True, False, True),
        ("/healthz", "GET", False, True, False),
        ("/media/{key}", "GET", False, True, False),
        ("/static", "GET", True, False, False),
    ],
)
def test_surfaces(
    table: tuple[web.Application, RouteTable],
    path: str,
    method: str,
    html: bool,
    api: bool,
    credentials: bool,
) -> None:
    got = info(table, path, method)
    assert (got.html_errors, got.api, got.credentials) == (html, api, credentials)


@pytest.mark.parametrize(
    ("path", "html", "credentials"),
    [("/api/v1/nope", False, True), ("/nope", True, True), ("/media/x", False, False)],
)
def test_unmatched_requests_go_by_path(path: str, html: bool, credentials: bool) -> None:
    got = unmatched(path)
    assert (got.html_errors, got.credentials, got.rate) == (html, credentials, None)


@pytest.mark.parametrize(
    ("path", "method", "idempotency", "streamed"),
    [
        ("/api/v1/photos/{id}/comments", "POST", "optional", False),
        ("/api/v1/photos/{id}/like", "PUT", "optional", False),
        ("/api/v1/me", "PATCH", "optional", False),
        ("/api/v1/comments/{id}", "DELETE", "optional", False),
        ("/api/v1/upload", "POST", "optional", True),
        ("/api/v1/photos", "POST", "optional", True),
        # Their answers hold a token: never stored, whatever the client sends.
        ("/api/v1/auth/signup", "POST", "none", False),
        ("/api/v1/auth/login", "POST", "none", False),
        # Reads are idempotent already; page forms carry their own keys.
        ("/api/v1/photos", "GET", "none", False),
        ("/api/v1/photos/{id}/comments", "GET", "none", False),
        ("/upload", "POST", "none", False),
        ("/p/{id}/like", "POST", "none", False),
    ],
)
def test_idempotency_is_said_per_route(
    table: tuple[web.Application, RouteTable],
    path: str,
    method: str,
    idempotency: str,
    streamed: bool,
) -> None:
    route = info(table, path, method)
    assert (route.idempotency, route.streamed_body) == (idempotency, streamed)

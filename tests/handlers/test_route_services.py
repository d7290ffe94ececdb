"""Each route's owning service, said once in the route table (handlers/routes.py),
and what a process of each role registers from it."""

from __future__ import annotations

import typing

import pytest
from aiohttp import web

from handlers.routes import ROUTES, setup_routes
from picshare.routing import RouteTable
from picshare.services import SERVICES, Owner


def _names(role: str) -> set[str]:
    app = web.Application()
    table: RouteTable = {}
    setup_routes(app, table, role=role)
    return {info.name for info in table.values()} - {"static"}


def test_every_route_names_one_owner() -> None:
    owners = set(typing.get_args(Owner))
    assert owners == {*SERVICES, "each"}
    for route in ROUTES:
        assert route.service in owners, route.name
    # The probes, and only they, are every process's own.
    assert {r.name for r in ROUTES if r.service == "each"} == {"healthz", "readyz", "metrics"}


def test_the_services_share_out_the_monolith_without_overlap() -> None:
    everything = _names("all")
    probes = {"healthz", "readyz", "metrics"}
    seen: set[str] = set()
    for service in SERVICES:
        own = _names(service) - probes
        assert own, service
        assert not own & seen, service
        seen |= own
    assert seen | probes == everything


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("search", {"api.search"}),
        (
            "notifications",
            {
                "api.notifications",
                "api.notifications.read",
                "ws",
                "graphql",
                "api.webhooks",
                "api.webhooks.create",
                "api.webhooks.delete",
                "api.webhooks.deliveries",
            },
        ),
    ],
)
def test_a_service_registers_only_its_routes(service: str, expected: set[str]) -> None:
    names = _names(service) - {"healthz", "readyz", "metrics", "graphql.post"}
    assert names == expected


def test_photos_owns_uploads_and_media_and_auth_the_accounts() -> None:
    photos, auth = _names("photos"), _names("auth")
    assert {"api.upload", "api.photo", "media", "api.like"} <= photos
    assert {"api.signup", "api.login", "api.logout", "api.me", "api.follow"} <= auth
    assert not {n for n in photos | auth if n.startswith("page.")}

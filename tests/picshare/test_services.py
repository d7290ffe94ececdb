"""The roles `serve --service` knows (picshare/services.py)."""

from __future__ import annotations

import pytest

from picshare.consumers import CONSUMER_NAMES, names_chosen
from picshare.services import PROFILES, ROLES, SERVICES, UpstreamError, parse_pairs, serves


def test_every_service_has_a_profile_naming_real_consumers() -> None:
    assert set(PROFILES) == {"all", *SERVICES}
    assert set(ROLES) == {"all", "gateway", *SERVICES}
    chosen = [name for s in SERVICES for name in names_chosen(PROFILES[s].consumers)]
    # With a broker, each consumer runs in exactly one service.
    assert sorted(chosen) == sorted(CONSUMER_NAMES)
    # Sockets are served by notifications only (and the monolith).
    assert [s for s in SERVICES if PROFILES[s].live] == ["notifications"]


def test_who_serves_what() -> None:
    assert serves("all", "search") and serves("search", "search")
    assert not serves("photos", "search")
    assert serves("photos", "each") and serves("web", "each")


def test_upstream_pairs_are_checked() -> None:
    assert parse_pairs(("auth=http://a", " web = http://w "), "x") == {
        "auth": "http://a",
        "web": "http://w",
    }
    for bad in (("auth",), ("billing=http://b",), ("auth=",), ("auth=http://a", "auth=http://b")):
        with pytest.raises(UpstreamError):
            parse_pairs(bad, "gateway.upstreams")

"""Policies from settings, wrong settings named, and which routes each covers."""

from __future__ import annotations

import pytest

from handlers.routes import ROUTES
from picshare.config import RateLimitSettings, SettingsError, load_settings, parse_rate
from picshare.ratelimit import Policies, Policy, route_policy
from picshare.ratelimit.policies import EXEMPT_ROUTES, LOGIN_ROUTES, UPLOAD_ROUTES


def test_defaults() -> None:
    p = Policies.from_settings(load_settings(env={}).ratelimit)
    assert p.uploads == Policy("uploads", 10, 60, "local")
    assert p.login == Policy("login", 5, 60, "local")
    assert p.writes == Policy("writes", 60, 60, "local")
    assert p.reads == Policy("reads", 600, 60, "open")
    assert p.reads.interval == 100_000


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/60s", (10, 60)),
        ("10/60", (10, 60)),
        (" 5 / 1m ", (5, 60)),
        ("100/h", (100, 3600)),
        ("3/2h", (3, 7200)),
        ("10", None),
        ("10/60x", None),
        ("-1/60s", None),
        ("ten/60s", None),
    ],
)
def test_parse_rate(text: str, rate: tuple[int, int] | None) -> None:
    assert parse_rate(text) == rate


def test_environment_sets_a_policy_and_which_fail_open() -> None:
    s = load_settings(
        env={"PICSHARE_RATELIMIT_WRITES": "3/10s", "PICSHARE_RATELIMIT_FAIL_OPEN": "reads,writes"}
    )
    p = Policies.from_settings(s.ratelimit)
    assert p.writes == Policy("writes", 3, 10, "open")
    assert p.uploads.on_backend_error == "local"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PICSHARE_RATELIMIT_WRITES": "lots"}, "ratelimit.writes"),
        ({"PICSHARE_RATELIMIT_READS": "0/60s"}, "ratelimit.reads"),
        ({"PICSHARE_RATELIMIT_LOGIN": "5/0s"}, "ratelimit.login"),
        ({"PICSHARE_RATELIMIT_UPLOADS": "5/2d"}, "ratelimit.uploads"),
        ({"PICSHARE_RATELIMIT_FAIL_OPEN": "reads,uplods"}, "ratelimit.fail_open"),
        ({"PICSHARE_RATELIMIT_LOCAL_MAX_KEYS": "10"}, "ratelimit.local_max_keys"),
        ({"PICSHARE_RATELIMIT_ENABLED": "sometimes"}, "ratelimit.enabled"),
    ],
)
def test_wrong_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_settings(env=env)


def test_policies_are_built_once_per_settings() -> None:
    s = RateLimitSettings()
    assert Policies.from_settings(s) is Policies.from_settings(RateLimitSettings())


P = Policies.from_settings(RateLimitSettings())


@pytest.mark.parametrize(
    ("route", "method", "policy"),
    [
        ("api.upload", "POST", P.uploads),
        ("api.upload.alias1", "POST", P.uploads),  # POST /api/v1/photos
        ("page.upload.submit", "POST", P.uploads),
        ("page.upload", "GET", P.reads),
        ("api.login", "POST", P.login),
        ("page.login.submit", "POST", P.login),
        ("api.signup", "POST", P.login),
        ("page.signup.submit", "POST", P.login),
        ("api.like", "PUT", P.writes),
        ("api.photo.delete.alias1", "DELETE", P.writes),
        ("api.me.update", "PATCH", P.writes),
        ("page.photo.like", "POST", P.writes),
        ("api.photos", "GET", P.reads),
        ("api.photos", "HEAD", P.reads),
        ("page.index", "GET", P.reads),
        ("healthz", "GET", None),
        ("readyz", "GET", None),
        ("metrics", "GET", None),
        ("media", "GET", None),
        ("static", "GET", None),
        (None, "GET", None),  # unmatched: 404 / 405
    ],
)
def test_route_classes(route: str | None, method: str, policy: Policy | None) -> None:
    assert route_policy(route, method, P) == policy


def test_every_upload_and_login_route_name_exists() -> None:
    """A renamed route would silently fall into 'writes'."""
    names = {r.name for r in ROUTES} | {"static"}
    assert names >= UPLOAD_ROUTES | LOGIN_ROUTES | EXEMPT_ROUTES

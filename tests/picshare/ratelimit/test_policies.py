"""Policies from settings, and wrong settings named. Which routes each covers:
tests/handlers/test_route_info.py."""

from __future__ import annotations

import pytest

from picshare.config import RateLimitSettings, SettingsError, load_settings, parse_rate
from picshare.ratelimit import Policies, Policy


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

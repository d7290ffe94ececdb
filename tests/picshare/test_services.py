"""The roles `serve --service` knows (picshare/services.py)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from picshare import comments, keys, likes
from picshare.app import create_app
from picshare.consumers import CONSUMER_NAMES, names_chosen
from picshare.notify import APPLY_JOB
from picshare.relay_inprocess import KIND_PREFIX
from picshare.services import (
    PARTS,
    PROFILES,
    ROLES,
    SERVICES,
    UpstreamError,
    parse_pairs,
    parts_for,
    serves,
)
from tests.conftest import make_settings


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


def test_every_job_kind_and_consumer_has_a_service_to_run_it() -> None:
    # The monolith builds and runs everything; each service only its parts.
    assert PROFILES["all"].parts == PROFILES["all"].jobs == frozenset(PARTS)
    run_somewhere = {part for s in SERVICES for part in PROFILES[s].jobs}
    assert run_somewhere == set(PARTS) - {"moderation"}  # moderation has no jobs
    for service in SERVICES:
        profile = PROFILES[service]
        assert profile.jobs <= parts_for(service, names_chosen(profile.consumers))
    assert parts_for("search", ["search"]) == {"users", "search"}


@pytest.mark.one_pass  # which services a role builds does not depend on shards
async def test_a_service_builds_runs_and_consumes_only_its_own(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: Any,
) -> None:
    """Per role, chosen from its profile: auth builds no photo service, runs
    the account, follow and payment jobs (not the photos' or webhooks'),
    and without a broker takes only its own consumers' events as jobs."""
    settings = make_settings(
        tmp_path / "data", database_url, server={"service": "auth"}, redis={"url": redis_url}
    )
    app = create_app(settings, media_pool=media_pool)
    await aiohttp_client(app)
    assert all(key in app for key in (keys.USERS, keys.SOCIAL, keys.PAYMENTS, keys.NOTIFIER))
    assert not any(key in app for key in (keys.PHOTOS, keys.WEBHOOKS, keys.SEARCH))
    runner = app[keys.JOBS]
    assert runner.kinds == {
        *app[keys.USERS].job_kinds(),
        *app[keys.SOCIAL].job_kinds(),
        *app[keys.PAYMENTS].job_kinds(),
        # Likes' and comments' counts run where social jobs do.
        likes.COUNT_JOB,
        likes.FORGET_JOB,
        comments.COUNT_JOB,
        comments.FORGET_JOB,
        KIND_PREFIX + "counters",
    }
    assert app[keys.NOTIFIER].placement == "transaction"  # no broker: as the monolith
    # Another service's kinds it may enqueue (run there), no unknown one.
    async with app[keys.DATABASES].catalog.transaction() as conn:
        await runner.enqueue(conn, APPLY_JOB, {"key": 1, "ops": []})
        with pytest.raises(ValueError, match="unknown job kind"):
            await runner.enqueue(conn, "no.such.kind", {})

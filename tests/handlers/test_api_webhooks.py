"""The webhooks API and the settings page's section: validation (problem
details naming the field), the SSRF guard at registration, the per-user
limit, ownership (404 for anyone else), the secret shown once, CSRF."""

from __future__ import annotations

import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from storage import webhooks_repo
from tests.conftest import AiohttpClient, bearer, make_settings, signup
from tests.handlers.test_pages import HTML, browser_signup, csrf_of

Client = TestClient[Any, Any]
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
async def loopback(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> Client:
    """An app that admits loopback receivers, at most 2 per user."""
    settings = make_settings(
        tmp_path / "data", database_url, webhooks={"allow_loopback": True, "max_per_user": 2}
    )
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    return client


async def _post(client: Client, token: str, body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/webhooks", json=body, headers=bearer(token))
    return resp.status, await resp.json()


def _field(problem: dict[str, Any]) -> str:
    [error] = problem["errors"]
    return str(error["field"])


async def test_register_list_delete_and_ownership(loopback: Client) -> None:
    alice, bob = await signup(loopback, "alice"), await signup(loopback, "bob")
    status, made = await _post(
        loopback, alice, {"url": HOOK, "events": ["photo.liked", "user.followed", "photo.liked"]}
    )
    assert status == 201, made
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]+", made["secret"])
    assert made["events"] == ["photo.liked", "user.followed"] and made["disabled"] is False

    listed = await (await loopback.get("/api/v1/webhooks", headers=bearer(alice))).json()
    assert [w["id"] for w in listed["items"]] == [made["id"]]
    assert "secret" not in listed["items"][0]  # shown once, when made
    others = await (await loopback.get("/api/v1/webhooks", headers=bearer(bob))).json()
    assert others["items"] == []

    # Another user's endpoint, a missing one and a malformed id: all 404.
    for path in (f"/api/v1/webhooks/{made['id']}", "/api/v1/webhooks/123", "/api/v1/webhooks/x"):
        assert (await loopback.delete(path, headers=bearer(bob))).status == 404
    log = f"/api/v1/webhooks/{made['id']}/deliveries"
    assert (await loopback.get(log, headers=bearer(bob))).status == 404
    page = await loopback.get(log, headers=bearer(alice))
    assert page.status == 200 and (await page.json()) == {"items": [], "next_cursor": None}
    bad_cursor = await loopback.get(log + "?cursor=%21", headers=bearer(alice))
    assert bad_cursor.status == 400 and _field(await bad_cursor.json()) == "cursor"
    assert (await loopback.get("/api/v1/webhooks")).status == 401

    resp = await loopback.delete(f"/api/v1/webhooks/{made['id']}", headers=bearer(alice))
    assert resp.status == 204
    assert (await loopback.get(log, headers=bearer(alice))).status == 404


async def test_validation_names_the_field(loopback: Client) -> None:
    alice = await signup(loopback, "alice")
    cases: list[tuple[Any, str]] = [
        ({"events": ["photo.liked"]}, "url"),
        ({"url": "ftp://127.0.0.1/x", "events": ["photo.liked"]}, "url"),
        ({"url": "http:///nohost", "events": ["photo.liked"]}, "url"),
        ({"url": 5, "events": ["photo.liked"]}, "url"),
        ({"url": HOOK, "events": []}, "events"),
        ({"url": HOOK, "events": "photo.liked"}, "events"),
        ({"url": HOOK, "events": ["photo.exploded"]}, "events"),
        ({"url": HOOK}, "events"),
    ]
    for body, field in cases:
        status, problem = await _post(loopback, alice, body)
        assert status == 400 and _field(problem) == field, (body, problem)
    listed = await (await loopback.get("/api/v1/webhooks", headers=bearer(alice))).json()
    assert listed["items"] == []  # nothing half-made


async def test_at_most_max_per_user(loopback: Client) -> None:
    alice = await signup(loopback, "alice")
    for _ in range(2):
        assert (await _post(loopback, alice, {"url": HOOK, "events": ["photo.liked"]}))[0] == 201
    status, problem = await _post(loopback, alice, {"url": HOOK, "events": ["photo.liked"]})
    assert status == 409, problem
    bob = await signup(loopback, "bob")  # the limit is per user
    assert (await _post(loopback, bob, {"url": HOOK, "events": ["photo.liked"]}))[0] == 201


async def test_private_addresses_are_refused_at_registration(client: Client) -> None:
    """The default settings: loopback refused too, by address or by name."""
    alice = await signup(client, "alice")
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost:8080/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:192.168.1.1]/hook",
        "http://224.0.0.1/hook",
    ):
        status, problem = await _post(client, alice, {"url": url, "events": ["photo.liked"]})
        assert status == 400 and _field(problem) == "url", (url, problem)
        assert "may not be reached" in problem["detail"]


async def test_loopback_allowed_admits_loopback_only(loopback: Client) -> None:
    alice = await signup(loopback, "alice")
    for url in (HOOK, "http://[::1]:9/hook", "http://localhost:9/hook"):
        assert (await _post(loopback, alice, {"url": url, "events": ["photo.liked"]}))[0] == 201
        made = await (await loopback.get("/api/v1/webhooks", headers=bearer(alice))).json()
        for w in made["items"]:
            await loopback.delete(f"/api/v1/webhooks/{w['id']}", headers=bearer(alice))
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/", "http://192.168.0.10/"):
        status, problem = await _post(loopback, alice, {"url": url, "events": ["photo.liked"]})
        assert status == 400 and _field(problem) == "url", (url, problem)


async def test_settings_page_adds_shows_the_secret_once_and_deletes(loopback: Client) -> None:
    await browser_signup(loopback, "webby")
    csrf = await csrf_of(loopback, "/settings")
    page = await (await loopback.get("/settings", headers=HTML)).text()
    assert 'action="/settings/webhooks"' in page and "No webhooks yet" in page

    # Without the CSRF token: refused, nothing made.
    resp = await loopback.post(
        "/settings/webhooks", data={"url": HOOK, "event.photo.liked": "on"}, headers=HTML
    )
    assert resp.status == 403
    assert "No webhooks yet" in await (await loopback.get("/settings", headers=HTML)).text()

    resp = await loopback.post(
        "/settings/webhooks",
        data={
            "csrf_token": csrf,
            "url": HOOK,
            "event.photo.liked": "on",
            "event.user.followed": "on",
        },
        headers=HTML,
    )
    assert resp.status == 200, await resp.text()
    shown = re.search(r'<code class="secret">(whsec_[^<]+)</code>', await resp.text())
    assert shown, "the secret is on the page the form answers with"
    again = await (await loopback.get("/settings", headers=HTML)).text()
    assert shown.group(1) not in again  # and never again
    assert HOOK in again and "photo.liked, user.followed" in again

    # A refused URL: the form again, the error by its field, nothing made.
    resp = await loopback.post(
        "/settings/webhooks",
        data={"csrf_token": csrf, "url": "http://10.0.0.1/", "event.photo.liked": "on"},
        headers=HTML,
    )
    assert resp.status == 400
    assert "<strong>url</strong>" in await resp.text()

    endpoint_id = re.search(r'action="/settings/webhooks/(\d+)/delete"', again)
    assert endpoint_id
    resp = await loopback.post(
        f"/settings/webhooks/{endpoint_id.group(1)}/delete",
        data={"csrf_token": csrf},
        headers=HTML,
        allow_redirects=False,
    )
    assert resp.status == 303
    assert "No webhooks yet" in await (await loopback.get("/settings", headers=HTML)).text()


async def test_the_delivery_log_is_trimmed_and_paginated(loopback: Client) -> None:
    alice = await signup(loopback, "alice")
    made = (await _post(loopback, alice, {"url": HOOK, "events": ["photo.liked"]}))[1]
    endpoint_id = int(made["id"])
    async with loopback.app[keys.DATABASES].of_id(endpoint_id).transaction() as conn:
        for attempt in range(1, 6):
            await webhooks_repo.log_delivery(
                conn,
                endpoint_id=endpoint_id,
                event_id=1,
                event_type="photo.liked",
                attempt=attempt,
                status=500,
                duration_ms=3,
                error="",
                next_delay=1.0,
                keep=3,
            )
    log = f"/api/v1/webhooks/{made['id']}/deliveries"
    first = await (await loopback.get(log + "?limit=2", headers=bearer(alice))).json()
    assert [d["attempt"] for d in first["items"]] == [5, 4]
    assert first["items"][0]["status"] == 500 and first["items"][0]["next_attempt_at"]
    second = await (
        await loopback.get(f"{log}?limit=2&cursor={first['next_cursor']}", headers=bearer(alice))
    ).json()
    assert [d["attempt"] for d in second["items"]] == [3]  # the newest 3 kept
    assert second["next_cursor"] is None

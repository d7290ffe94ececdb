"""Every list route, API or page, reads `cursor` the one way (picshare/pagination.py):
an empty or malformed cursor is a 400 problem naming `cursor`, as openapi.json says."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.routes import ROUTES
from picshare import keys, webhook_signature
from picshare.errors import InvalidInput
from picshare.pagination import decode_cursor, encode_cursor
from storage import webhooks_repo
from tests.conftest import bearer, signup, upload

Client = TestClient[Any, Any]

LISTS = [r for r in ROUTES if "cursor" in r.query]


def test_the_route_table_names_every_list() -> None:
    paths = {r.path for r in LISTS}
    assert {"/", "/p/{id}", "/u/{username}", "/tags/{tag}", "/notifications"} <= paths
    assert {"/api/v1/photos", "/api/v1/feed", "/api/v1/notifications"} <= paths
    assert len(LISTS) >= 14


def test_cursors_round_trip_and_nothing_else_decodes() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor(encode_cursor(123456789)) == 123456789
    for bad in ("", " ", "dj.E6MTIz", "djE6MTIz=", "djE6MTIz\n", "a" * 65, "0"):
        with pytest.raises(InvalidInput) as caught:
            decode_cursor(bad)
        assert caught.value.errors[0].field == "cursor", bad


async def test_an_empty_or_foreign_cursor_is_a_400_on_every_list(client: Client) -> None:
    token = await signup(client, "lister")
    resp = await upload(client, token, imaging.jpeg_bytes(32, 32), tags="sunset")
    assert resp.status == 201, await resp.text()
    photo_id = (await resp.json())["id"]
    params = {"id": photo_id, "username": "lister", "tag": "sunset"}
    # A webhook's delivery log lists under the webhook's id (made here
    # directly: registering one resolves its host, which this machine cannot).
    me = await (await client.get("/api/v1/me", headers=bearer(token))).json()
    async with client.app[keys.DATABASES].of_user(int(me["id"])).write() as conn:
        hook = await webhooks_repo.add_endpoint(
            conn,
            user_id=int(me["id"]),
            url="https://hooks.example/in",
            events=["photo.liked"],
            secret=webhook_signature.new_secret(),
        )
    valid = encode_cursor(int(photo_id))
    for route in LISTS:
        hooked = route.path.startswith("/api/v1/webhooks/")
        own = {**params, "id": str(hook.id)} if hooked else params
        url = route.path.format(**own)
        ok = await client.get(f"{url}?cursor={valid}", headers=bearer(token))
        assert ok.status == 200, (url, await ok.text())
        # "." would be skipped by a lax base64 decoder, and then accepted.
        for cursor in ("", "djE6MTIz.", "%20"):
            resp = await client.get(f"{url}?cursor={cursor}", headers=bearer(token))
            assert resp.status == 400, (url, cursor, resp.status)
            body = await resp.json()
            assert body["errors"][0]["field"] == "cursor", (url, body)

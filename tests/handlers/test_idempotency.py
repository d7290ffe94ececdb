"""Idempotency-Key as a client sees it: replays, 422 for another payload, 409
while the first runs, keys per user, stale claims taken over, expiry, and
the upload page's own key (a double-submitted form makes one photo)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.route_info import register
from picshare import keys
from picshare.app import create_app
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload_ready
from tests.handlers.test_pages import HTML, browser_signup, csrf_of

Client = TestClient[Any, Any]
KEY = "Idempotency-Key"


class Slow:
    """A test-only route marked "required": each call waits for `release`."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_first = False

    async def handler(self, request: web.Request) -> web.Response:
        self.calls += 1
        call = self.calls
        self.entered.set()
        if self.fail_first and call == 1:
            raise RuntimeError("boom")
        if call == 1:
            await self.release.wait()
        body = await request.json()
        return web.json_response({"call": call, "echo": body}, status=201)


@pytest.fixture
async def slow_app(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> tuple[Client, Slow]:
    slow = Slow()
    app = create_app(make_settings(tmp_path / "data", database_url), media_pool=media_pool)
    # The request layer goes around each handler as it is added (no app middlewares).
    route = app.router.add_post("/api/v1/test/slow", app[keys.LAYER](slow.handler))
    register(
        app[keys.ROUTE_INFO],
        route,
        name="test.slow",
        surface="api",
        limit="by_method",
        credentials=True,
        idempotency="required",
    )
    client: Client = await aiohttp_client(app)
    return client, slow


def _keyed(token: str, key: str) -> dict[str, str]:
    return {**bearer(token), KEY: key}


async def _comment(client: Client, token: str, photo_id: str, text: str, key: str) -> Any:
    return await client.post(
        f"/api/v1/photos/{photo_id}/comments", json={"text": text}, headers=_keyed(token, key)
    )


async def _total(client: Client, query: str) -> int:
    """A count summed over every shard database."""
    total = 0
    for db in client.app[keys.DATABASES].physical:
        total += int(await db.primary.pool.fetchval(query))
    return total


async def _everywhere(client: Client, statement: str) -> None:
    """Run a statement on every shard database."""
    for db in client.app[keys.DATABASES].physical:
        await db.primary.pool.execute(statement)


async def _comment_count(client: Client) -> int:
    return await _total(client, "SELECT count(*) FROM comments")


async def test_same_key_same_payload_replays_the_first_answer(client: Client) -> None:
    token = await signup(client, "replayer")
    photo = await upload_ready(client, token, imaging.jpeg_bytes(64, 64))
    first = await _comment(client, token, photo["id"], "hello", "k-1")
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    body = await first.read()
    again = await _comment(client, token, photo["id"], "hello", "k-1")
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content_type == first.content_type
    assert await again.read() == body
    assert await _comment_count(client) == 1
    # Another key is another request.
    assert (await _comment(client, token, photo["id"], "hello", "k-2")).status == 201
    assert await _comment_count(client) == 2


async def test_client_errors_are_answers_and_replay_too(client: Client) -> None:
    token = await signup(client, "erring")
    first = await _comment(client, token, "1", "to nowhere", "k-404")
    assert first.status == 404
    again = await _comment(client, token, "1", "to nowhere", "k-404")
    assert again.status == 404
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content_type == "application/problem+json"
    assert await again.json() == await first.json()


async def test_same_key_other_payload_is_422(client: Client) -> None:
    token = await signup(client, "reuser")
    photo = await upload_ready(client, token, imaging.jpeg_bytes(64, 64))
    assert (await _comment(client, token, photo["id"], "one", "k")).status == 201
    resp = await _comment(client, token, photo["id"], "two", "k")
    assert resp.status == 422
    problem = await resp.json()
    assert problem["errors"][0]["field"] == KEY
    # Another route (path) under the same key is another payload too.
    resp = await client.patch("/api/v1/me", json={"bio": "x"}, headers=_keyed(token, "k"))
    assert resp.status == 422
    assert await _comment_count(client) == 1


async def test_keys_are_per_user(client: Client) -> None:
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    photo = await upload_ready(client, alice, imaging.jpeg_bytes(64, 64))
    one = await _comment(client, alice, photo["id"], "same", "shared-key")
    two = await _comment(client, bob, photo["id"], "same", "shared-key")
    assert one.status == two.status == 201
    assert "Idempotent-Replayed" not in two.headers
    assert (await one.json())["id"] != (await two.json())["id"]
    # Each user's retry replays their own answer.
    for token, first in ((alice, one), (bob, two)):
        again = await _comment(client, token, photo["id"], "same", "shared-key")
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await again.json() == await first.json()
    assert await _comment_count(client) == 2
    # Anonymous requests have no scope to keep a key in: it is ignored, so
    # one visitor can never be handed another's answer (a sign-up's token).
    answers = []
    for name in ("anon1", "anon2"):
        body = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
        resp = await client.post("/api/v1/auth/signup", json=body, headers={KEY: "a"})
        assert resp.status == 201
        answers.append((await resp.json())["token"])
    assert answers[0] != answers[1]


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_an_invalid_key_is_400_naming_the_header(client: Client, key: str) -> None:
    token = await signup(client, "badkey")
    resp = await client.patch("/api/v1/me", json={"bio": "x"}, headers=_keyed(token, key))
    assert resp.status == 400
    problem = await resp.json()
    assert problem["errors"][0]["field"] == KEY
    ok = await client.patch("/api/v1/me", json={"bio": "x"}, headers=bearer(token))
    assert ok.status == 200


async def test_required_route_without_key_is_400(slow_app: tuple[Client, Slow]) -> None:
    client, slow = slow_app
    token = await signup(client, "needy")
    resp = await client.post("/api/v1/test/slow", json={}, headers=bearer(token))
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["errors"][0]["field"] == KEY
    assert slow.calls == 0


async def test_a_request_in_flight_is_409_then_replayed(slow_app: tuple[Client, Slow]) -> None:
    client, slow = slow_app
    token = await signup(client, "hasty")
    first = asyncio.create_task(
        client.post("/api/v1/test/slow", json={"a": 1}, headers=_keyed(token, "k"))
    )
    await asyncio.wait_for(slow.entered.wait(), 10)
    busy = await client.post("/api/v1/test/slow", json={"a": 1}, headers=_keyed(token, "k"))
    assert busy.status == 409
    assert busy.headers["Retry-After"] == "1"
    assert (await busy.json())["errors"][0]["field"] == KEY
    slow.release.set()
    done = await first
    assert done.status == 201
    replay = await client.post("/api/v1/test/slow", json={"a": 1}, headers=_keyed(token, "k"))
    assert replay.status == 201
    assert await replay.json() == await done.json() == {"call": 1, "echo": {"a": 1}}
    assert slow.calls == 1


async def test_a_failure_releases_the_key(slow_app: tuple[Client, Slow]) -> None:
    client, slow = slow_app
    slow.fail_first = True
    token = await signup(client, "unlucky")
    failed = await client.post("/api/v1/test/slow", json={}, headers=_keyed(token, "k"))
    assert failed.status == 500
    retry = await client.post("/api/v1/test/slow", json={}, headers=_keyed(token, "k"))
    assert retry.status == 201
    assert "Idempotent-Replayed" not in retry.headers
    replay = await client.post("/api/v1/test/slow", json={}, headers=_keyed(token, "k"))
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert slow.calls == 2


async def test_a_stale_claim_is_taken_over(slow_app: tuple[Client, Slow]) -> None:
    """A claim whose holder stopped renewing it (a crashed process) stops
    blocking once its lease is up; the old holder can no longer store its answer."""
    client, slow = slow_app
    token = await signup(client, "heir")
    stuck = asyncio.create_task(
        client.post("/api/v1/test/slow", json={}, headers=_keyed(token, "k"))
    )
    await asyncio.wait_for(slow.entered.wait(), 10)
    await _everywhere(
        client, "UPDATE idempotency_keys SET lease_until = now() - interval '1 second'"
    )
    heir = await client.post("/api/v1/test/slow", json={}, headers=_keyed(token, "k"))
    assert heir.status == 201
    assert (await heir.json())["call"] == 2
    slow.release.set()
    assert (await stuck).status == 201  # ran, but its answer is not the one kept
    replay = await client.post("/api/v1/test/slow", json={}, headers=_keyed(token, "k"))
    assert (await replay.json())["call"] == 2


async def test_keys_expire_and_are_swept(client: Client) -> None:
    token = await signup(client, "forgetful")
    photo = await upload_ready(client, token, imaging.jpeg_bytes(64, 64))
    assert (await _comment(client, token, photo["id"], "a", "old")).status == 201
    await _everywhere(
        client, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'"
    )
    # An expired key is as good as new: the request runs again.
    again = await _comment(client, token, photo["id"], "a", "old")
    assert again.status == 201
    assert "Idempotent-Replayed" not in again.headers
    assert await _comment_count(client) == 2
    assert (await _comment(client, token, photo["id"], "b", "other")).status == 201
    # The keys live on the user's shard.
    pool = client.app[keys.DATABASES].of_username("forgetful").primary.pool
    await pool.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'other'"
    )
    assert await client.app[keys.IDEMPOTENCY].sweep() == 1
    assert await pool.fetchval("SELECT array_agg(key) FROM idempotency_keys") == ["old"]
    kept = await pool.fetchval(
        "SELECT expires_at - created_at FROM idempotency_keys WHERE key = 'old'"
    )
    assert kept.total_seconds() >= 24 * 3600


async def test_an_api_upload_with_a_key_makes_one_photo(client: Client) -> None:
    token = await signup(client, "uploader")
    data = imaging.jpeg_bytes(64, 64)

    async def send() -> Any:
        form = FormData()
        form.add_field("file", io.BytesIO(data), filename="x.jpg", content_type="image/jpeg")
        return await client.post("/api/v1/upload", data=form, headers=_keyed(token, "up"))

    first = await send()
    assert first.status == 201
    again = await send()
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == (await first.json())["id"]
    assert await _total(client, "SELECT count(*) FROM photos") == 1


async def test_an_upload_still_streaming_is_409(client: Client) -> None:
    """The claim is taken before a streamed body is read: a duplicate sent
    while the first file is still arriving is refused."""
    token = await signup(client, "dripper")
    data = imaging.jpeg_bytes(64, 64)
    gate = asyncio.Event()

    async def drip() -> Any:
        yield data[:100]
        await gate.wait()
        yield data[100:]

    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    async def body() -> Any:
        yield head
        async for chunk in drip():
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**_keyed(token, "drip"), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    first = asyncio.create_task(client.post("/api/v1/upload", data=body(), headers=headers))
    for _ in range(100):
        if await _total(client, "SELECT count(*) FROM idempotency_keys"):
            break
        await asyncio.sleep(0.05)
    form = FormData()
    form.add_field("file", io.BytesIO(data), filename="x.jpg", content_type="image/jpeg")
    busy = await client.post("/api/v1/upload", data=form, headers=_keyed(token, "drip"))
    assert busy.status == 409
    gate.set()
    assert (await first).status == 201
    assert await _total(client, "SELECT count(*) FROM photos") == 1


def _upload_form(csrf: str, form_key: str, data: bytes) -> FormData:
    form = FormData()
    form.add_field("csrf_token", csrf)
    form.add_field("idempotency_key", form_key)
    form.add_field("caption", "twice")
    form.add_field("file", io.BytesIO(data), filename="x.jpg", content_type="image/jpeg")
    return form


async def _form_key(client: Client) -> tuple[str, str]:
    page = await (await client.get("/upload", headers=HTML)).text()
    match = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert match, "no idempotency key on the upload form"
    return await csrf_of(client, "/upload"), match.group(1)


async def test_the_upload_form_sent_twice_makes_one_photo(client: Client) -> None:
    await browser_signup(client, "doubleclick")
    csrf, form_key = await _form_key(client)
    data = imaging.jpeg_bytes(80, 60)
    send: Callable[[], Awaitable[Any]] = lambda: client.post(  # noqa: E731
        "/upload", data=_upload_form(csrf, form_key, data), allow_redirects=False
    )
    first = await send()
    second = await send()
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert first.headers["Location"].startswith("/p/")
    # At once, with a new form: still one photo, and both go to it.
    csrf, other_key = await _form_key(client)
    assert other_key != form_key
    together = await asyncio.gather(
        *(
            client.post("/upload", data=_upload_form(csrf, other_key, data), allow_redirects=False)
            for _ in range(3)
        )
    )
    assert [r.status for r in together] == [303] * 3
    assert len({r.headers["Location"] for r in together}) == 1
    assert await _total(client, "SELECT count(*) FROM photos") == 2


async def test_the_upload_form_reused_for_another_file_is_refused(client: Client) -> None:
    await browser_signup(client, "backbutton")
    csrf, form_key = await _form_key(client)
    first = await client.post(
        "/upload",
        data=_upload_form(csrf, form_key, imaging.jpeg_bytes(80, 60)),
        allow_redirects=False,
    )
    assert first.status == 303
    other = await client.post(
        "/upload",
        data=_upload_form(csrf, form_key, imaging.jpeg_bytes(90, 70)),
        headers=HTML,
        allow_redirects=False,
    )
    assert other.status == 422
    page = await other.text()
    fresh = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert fresh and fresh.group(1) != form_key  # the form again, with a new key
    assert await _total(client, "SELECT count(*) FROM photos") == 1

"""Bad input gets a clear 4xx, never a 500: regressions found by review and fuzzing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.pages import local_path
from picshare import keys
from tests.conftest import bearer, signup, upload_ready

Client = TestClient[Any, Any]


def test_only_local_paths_are_redirect_targets() -> None:
    for good in ("/", "/upload", "/p/123?x=1"):
        assert local_path(good) == good
    for bad in (
        "//evil.example",
        "/\t/evil.example",
        "/\\evil.example",
        "https://evil.example",
        "evil",
        "/ok\n",
        "/a b",
    ):
        assert local_path(bad) == "/", bad


async def test_odd_limits_and_ranges_are_4xx(client: Client) -> None:
    for query in ("limit=%C2%B2", "limit=" + "9" * 50, "limit=-1"):
        resp = await client.get(f"/api/v1/photos?{query}")
        assert resp.status == 400, query
    token = await signup(client)
    photo = await upload_ready(client, token, imaging.jpeg_bytes(64, 64))
    url = photo["urls"]["large"]
    for header in ("bytes=" + "9" * 5000 + "-", "bytes=5-2", "bytes=-0", "items=0-1"):
        resp = await client.get(url, headers={"Range": header})
        assert resp.status in (200, 416), header


async def test_json_body_arriving_in_pieces_is_read_whole(client: Client) -> None:
    token = await signup(client)

    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"bio": "' + b"a" * 1500
        yield b'"}'

    resp = await client.patch(
        "/api/v1/me",
        data=pieces(),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    # Read whole, it is valid JSON; the bio is then too long (400 naming it),
    # not "invalid JSON" from a half-read body.
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["field"] == "bio"


async def test_multipart_problems_are_400(client: Client) -> None:
    token = await signup(client)
    headers = {**bearer(token), "Content-Type": "multipart/form-data; boundary=XyZ"}
    truncated = b'--XyZ\r\nContent-Disposition: form-data; name="caption"\r\n\r\nhi'
    resp = await client.post("/api/v1/upload", data=truncated, headers=headers)
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    form = FormData()
    form.add_field("junk", b"x" * 1000, filename="junk.bin")
    form.add_field("file", imaging.jpeg_bytes(32, 32), filename="a.jpg")
    resp = await client.post("/api/v1/upload", data=form, headers=bearer(token))
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["field"] == "junk"


async def test_a_revoked_session_can_log_in_again(client: Client) -> None:
    import re

    page = await (await client.get("/signup", headers={"Accept": "text/html"})).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    resp = await client.post(
        "/signup",
        data={
            "csrf_token": csrf.group(1),
            "username": "revoked",
            "email": "r@example.com",
            "password": "correct horse",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    # The session's token lives on its user's shard.
    await (
        client.app[keys.DATABASES]
        .of_username("revoked")
        .primary.pool.execute("UPDATE auth_tokens SET revoked_at = now()")
    )
    page = await (await client.get("/login", headers={"Accept": "text/html"})).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    resp = await client.post(
        "/login",
        data={"csrf_token": csrf.group(1), "username": "revoked", "password": "correct horse"},
        allow_redirects=False,
    )
    assert resp.status == 303


async def test_settings_that_cannot_round_trip_are_refused(client: Client) -> None:
    token = await signup(client, "settler")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["n"] = {}
        node = node["n"]
    # A huge number is a valid JSON number: it is stored and read back as one.
    resp = await client.patch("/api/v1/me", json={"settings": {"x": 10**20}}, headers=bearer(token))
    assert resp.status == 200
    assert (await resp.json())["settings"]["x"] == 1e20
    for bad in ({"a": "\u0000"}, {"\u0000": 1}, deep):
        resp = await client.patch("/api/v1/me", json={"settings": bad}, headers=bearer(token))
        assert resp.status == 400, bad
        assert (await resp.json())["errors"][0]["field"] == "settings"
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status == 200  # nothing of it was stored


async def test_nul_and_control_characters_never_reach_the_database(client: Client) -> None:
    await signup(client, "nulls")
    for url in (
        "/api/v1/photos?tag=a%00",
        "/api/v1/users/a%00b/photos",
        "/api/v1/photos?user=a%00",
        "/api/v1/tags/a%00/photos",
        "/api/v1/users/a%00",
    ):
        resp = await client.get(url)
        assert resp.status in (200, 404), url
    resp = await client.get("/api/v1/search?q=a%00")
    assert resp.status == 400
    resp = await client.post("/api/v1/auth/login", json={"username": "a\u0000", "password": "x"})
    assert resp.status == 401
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"username": "ctrl_user", "email": "a\u0001b@example.com", "password": "x" * 10},
    )
    assert resp.status == 400
    resp = await client.get("/api/v1/me", headers={"Authorization": "Bearer caf\u00e9"})
    assert resp.status == 401


async def test_multipart_with_a_bad_part_header_is_400(client: Client) -> None:
    token = await signup(client, "parts")
    body = b'--XX\r\nContent-Disposition: form-data; name="a\x01"\r\n\r\nv\r\n--XX--\r\n'
    resp = await client.post(
        "/api/v1/upload",
        data=body,
        headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=XX"},
    )
    assert resp.status == 400


async def test_tags_keep_combining_marks(client: Client) -> None:
    from tests.conftest import upload

    token = await signup(client, "hindi")
    resp = await upload(client, token, imaging.jpeg_bytes(32, 32), tags="हिन्दी İstanbul")
    assert resp.status == 201, await resp.text()
    assert len((await resp.json())["tags"]) == 2


async def test_unknown_range_unit_is_ignored_and_416_is_a_problem(client: Client) -> None:
    token = await signup(client, "ranger")
    photo = await upload_ready(client, token, imaging.jpeg_bytes(64, 64))
    url = photo["urls"]["large"]
    assert (await client.get(url, headers={"Range": "items=0-4"})).status == 200
    resp = await client.get(url, headers={"Range": "bytes=99999999-"})
    assert resp.status == 416
    assert resp.content_type == "application/problem+json"
    assert "immutable" not in resp.headers.get("Cache-Control", "")


async def test_probes_and_media_ignore_a_bad_bearer(client: Client) -> None:
    headers = {"Authorization": "Bearer nope"}
    assert (await client.get("/healthz", headers=headers)).status == 200
    assert (await client.get("/readyz", headers=headers)).status == 200


async def test_a_non_ascii_csrf_token_is_a_403_not_a_500(client: Client) -> None:
    # Found by fuzzing the pages: hmac.compare_digest refuses non-ASCII text.
    await client.get("/login")  # the anonymous session cookie, with its CSRF secret
    for form in ({"csrf_token": "é"}, {"csrf_token": "\u00bb", "username": "x", "password": "y"}):
        resp = await client.post("/login", data=form, allow_redirects=False)
        assert resp.status == 403, await resp.text()
    # The API's header too, for a cookie-authenticated request (raw bytes in a
    # header arrive as surrogate escapes).
    await signup(client, "headers")
    form = {"csrf_token": await _csrf(client), "username": "headers", "password": "correct horse"}
    login = await client.post("/login", data=form, allow_redirects=False)
    assert login.status == 303
    resp = await client.patch(
        "/api/v1/me", json={"bio": "x"}, headers={"X-CSRF-Token": "\u00e9t\u00e9"}
    )
    assert resp.status == 403


async def _csrf(client: Client) -> str:
    import re

    page = await (await client.get("/login", headers={"Accept": "text/html"})).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def test_a_static_name_too_long_for_the_file_system_is_404(client: Client) -> None:
    # Found by fuzzing: the file system's ENAMETOOLONG escaped aiohttp's static handler.
    resp = await client.get("/static/" + "a" * 300)
    assert resp.status == 404
    resp = await client.get("/static/" + "\u1e70\u033a" * 100 + "/x.css")
    assert resp.status == 404
    assert (await client.get("/static/app.css")).status == 200


async def test_every_kind_of_answer_carries_the_security_headers(client: Client) -> None:
    """Set where the answer leaves the chain (or, for media, before the
    handler sends it): JSON, pages, redirects, errors, files and media."""
    token = await signup(client, "headers")
    photo = await upload_ready(client, token, imaging.jpeg_bytes(64, 48))
    media = str(photo["urls"]["thumb"])
    answers = {
        "json": await client.get(f"/api/v1/photos/{photo['id']}"),
        "page": await client.get("/", headers={"Accept": "text/html"}),
        "redirect": await client.get("/upload", allow_redirects=False),
        "404 page": await client.get("/nowhere", headers={"Accept": "text/html"}),
        "404 problem": await client.get("/api/v1/nowhere"),
        "media": await client.get(media),
        "304": await client.get(media, headers={"If-None-Match": "*"}),
    }
    for name, resp in answers.items():
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", name
        assert resp.headers.get("Referrer-Policy") == "same-origin", name
        assert resp.headers.get("X-Request-ID"), name
    for name in ("page", "404 page"):
        assert answers[name].headers.get("X-Frame-Options") == "DENY", name
        assert "frame-ancestors 'none'" in answers[name].headers["Content-Security-Policy"]
    assert "Content-Security-Policy" not in answers["json"].headers

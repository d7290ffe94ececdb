"""The HTML pages over plain HTTP: forms, CSRF, sessions, escaping."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys

Client = TestClient[Any, Any]
HTML = {"Accept": "text/html"}


async def csrf_of(client: Client, path: str) -> str:
    page = await (await client.get(path, headers=HTML)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def browser_signup(client: Client, username: str = "webby") -> None:
    token = await csrf_of(client, "/signup")
    resp = await client.post(
        "/signup",
        data={
            "csrf_token": token,
            "username": username,
            "email": f"{username}@example.com",
            "password": "correct horse",
        },
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()


async def test_signup_login_logout_flow(client: Client) -> None:
    home = await client.get("/", headers=HTML)
    assert home.status == 200
    assert "Sign up" in await home.text()
    cookie = home.cookies["picshare_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    await browser_signup(client)
    page = await (await client.get("/", headers=HTML)).text()
    assert "@webby" in page
    token = await csrf_of(client, "/")
    resp = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert "@webby" not in await (await client.get("/", headers=HTML)).text()
    token = await csrf_of(client, "/login")
    resp = await client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": "webby",
            "password": "correct horse",
            "next": "//evil.example/",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/"  # no open redirect


async def test_forms_without_csrf_are_refused(client: Client) -> None:
    await client.get("/signup", headers=HTML)
    resp = await client.post(
        "/signup",
        data={"username": "x_user", "email": "x@example.com", "password": "correct horse"},
        headers=HTML,
    )
    assert resp.status == 403
    async with client.app[keys.DATABASES].of_username("x_user").primary.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0


async def test_form_errors_are_shown_with_the_field(client: Client) -> None:
    token = await csrf_of(client, "/signup")
    resp = await client.post(
        "/signup",
        data={"csrf_token": token, "username": "<b>x", "email": "bad", "password": "pw"},
    )
    assert resp.status == 400
    text = await resp.text()
    assert "username" in text and "&lt;b&gt;x" in text and "<b>x" not in text


async def test_upload_form_works_without_javascript_and_escapes_captions(client: Client) -> None:
    await browser_signup(client, "poster")
    token = await csrf_of(client, "/upload")
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("caption", "<script>alert(1)</script> #Beach")
    form.add_field("tags", "")
    form.add_field("file", imaging.jpeg_bytes(320, 240), filename="x.jpg")
    resp = await client.post("/upload", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    assert location.startswith("/p/")
    page = await (await client.get(location, headers=HTML)).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert "#beach" in page


async def test_upload_form_without_csrf_stores_nothing(client: Client) -> None:
    await browser_signup(client, "poster2")
    form = FormData()
    form.add_field("file", imaging.jpeg_bytes(32, 32), filename="x.jpg")
    resp = await client.post("/upload", data=form, headers=HTML)
    assert resp.status == 403
    async with client.app[keys.DATABASES].of_username("poster2").primary.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM photos") == 0


async def test_cookie_session_api_write_needs_csrf_header(client: Client) -> None:
    await browser_signup(client, "mixer")
    resp = await client.patch("/api/v1/me", json={"bio": "x"})
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    token = await csrf_of(client, "/")
    resp = await client.patch("/api/v1/me", json={"bio": "x"}, headers={"X-CSRF-Token": token})
    assert resp.status == 200


async def test_upload_page_redirects_anonymous_to_login(client: Client) -> None:
    resp = await client.get("/upload", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/login")


async def test_missing_photo_page_is_an_html_404(client: Client) -> None:
    resp = await client.get("/p/123", headers=HTML)
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "404" in await resp.text()


async def test_cookie_is_secure_behind_a_trusted_https_proxy(
    settings: Any, media_pool: Any, aiohttp_client: Any
) -> None:
    from picshare.app import create_app

    behind_proxy = settings.replace(server={"trusted_proxies": ["127.0.0.1"]})
    client = await aiohttp_client(create_app(behind_proxy, media_pool=media_pool))
    plain = await client.get("/", headers=HTML)
    assert not plain.cookies["picshare_session"]["secure"]
    client.session.cookie_jar.clear()
    https = await client.get("/", headers={**HTML, "X-Forwarded-Proto": "https"})
    assert https.cookies["picshare_session"]["secure"]

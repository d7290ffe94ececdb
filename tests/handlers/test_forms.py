"""Every page form refuses a body it cannot read with a 4xx naming `body`, never
a 500, before its CSRF check: the one reader is `handlers/forms.py`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from handlers.forms import MAX_FIELDS, MAX_FORM_BYTES
from handlers.routes import ROUTES, Route
from tests.conftest import bearer, signup
from tests.handlers.test_pages import HTML, csrf_of

Client = TestClient[Any, Any]

PAGE_POSTS = [r for r in ROUTES if r.tag == "pages" and r.method == "POST"]
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def _url(route: Route, username: str) -> str:
    return re.sub(
        r"\{(\w+)\}",
        lambda m: {"id": "1", "username": username, "requester": "bob"}[m.group(1)],
        route.path,
    )


def test_every_page_form_is_covered() -> None:
    paths = {r.path for r in PAGE_POSTS}
    assert {"/login", "/logout", "/signup", "/settings", "/upload", "/notifications/read"} <= paths
    assert "/u/{username}/requests/{requester}/approve" in paths
    assert len(PAGE_POSTS) >= 14


@pytest.mark.parametrize("route", PAGE_POSTS, ids=[r.name for r in PAGE_POSTS])
async def test_multipart_without_boundary_is_400(client: Client, route: Route) -> None:
    token = await signup(client, "former")  # signed in: the upload page reads its body too
    url = _url(route, "former")
    headers = {**bearer(token), "Content-Type": "multipart/form-data"}
    resp = await client.post(url, data=b"csrf_token=x", headers=headers, allow_redirects=False)
    assert resp.status == 400, await resp.text()
    if route.path == "/upload":
        # The upload page shows its form again, with the error by the field.
        assert "well-formed multipart" in await resp.text()
    else:
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["errors"][0]["field"] == "body"
    # A browser gets the error page, with the same status.
    headers = {**headers, **HTML}
    resp = await client.post(url, data=b"csrf_token=x", headers=headers, allow_redirects=False)
    assert resp.status == 400
    assert resp.content_type == "text/html"


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b"csrf_token=x&bio="
    for _ in range(total // 8192):
        yield b"a" * 8192


# (Content-Type, body, status): bodies a form reader must refuse with a 4xx.
BAD_BODIES: dict[str, tuple[str, Any, int]] = {
    "raw bytes not UTF-8": (URLENCODED["Content-Type"], b"csrf_token=x&bio=\xff\xfe", 400),
    "escapes not UTF-8": (URLENCODED["Content-Type"], b"csrf_token=x&bio=%ff%fe", 400),
    "unknown charset": (f"{URLENCODED['Content-Type']}; charset=nope", b"csrf_token=x", 415),
    "latin-1 charset": (f"{URLENCODED['Content-Type']}; charset=latin-1", b"csrf_token=x", 415),
    "too many fields": (URLENCODED["Content-Type"], b"&".join([b"a=1"] * (MAX_FIELDS + 1)), 400),
    "NUL in a field": (URLENCODED["Content-Type"], b"csrf_token=x&bio=a%00b", 400),
    "oversized": (URLENCODED["Content-Type"], b"bio=" + b"a" * MAX_FORM_BYTES, 413),
    "oversized, chunked": (URLENCODED["Content-Type"], "chunked", 413),
    "another media type": ("text/plain", b"csrf_token=x", 415),
    "truncated multipart": (
        "multipart/form-data; boundary=XyZ",
        b'--XyZ\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nx',
        400,
    ),
    "multipart not UTF-8": (
        "multipart/form-data; boundary=XyZ",
        b'--XyZ\r\nContent-Disposition: form-data; name="bio"\r\n\r\n\xff\r\n--XyZ--\r\n',
        400,
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_form_bodies_are_4xx_on_every_page_form(client: Client, case: str) -> None:
    token = await signup(client, "former")
    content_type, body, status = BAD_BODIES[case]
    for route in PAGE_POSTS:
        if route.path == "/upload":
            continue  # its multipart stream is read by upload_form.py (test_hardening.py)
        data = _chunks(MAX_FORM_BYTES + 8192) if body == "chunked" else body
        resp = await client.post(
            _url(route, "former"),
            data=data,
            headers={**bearer(token), "Content-Type": content_type},
            allow_redirects=False,
        )
        assert resp.status == status, (route.path, await resp.text())
        assert (await resp.json())["errors"][0]["field"] in ("body", "bio"), route.path


async def test_a_bodyless_form_is_a_csrf_refusal(client: Client) -> None:
    resp = await client.post("/logout", allow_redirects=False)
    assert resp.status == 403
    assert (await resp.json())["errors"][0]["field"] == "csrf_token"


async def test_multipart_forms_still_work(client: Client) -> None:
    token = await csrf_of(client, "/signup")
    form = FormData()
    for name, value in (
        ("csrf_token", token),
        ("username", "multi"),
        ("email", "multi@example.com"),
        ("password", "correct horse"),
    ):
        form.add_field(name, value)
    form.add_field("ignored", b"file bytes", filename="a.txt")  # files are dropped
    resp = await client.post("/signup", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await (await client.get("/", headers=HTML)).text()
    assert "@multi" in page

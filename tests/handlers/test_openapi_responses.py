"""Real answers of the API and the pages, successes and errors, each checked
against `/openapi.json`: the status is declared, and so are the media type
and (for JSON) the body's shape. The document and the behaviour agree."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from tests.conftest import bearer, signup, upload, upload_ready
from tests.handlers.test_pages import HTML, csrf_of
from tests.openapi_conformance import Conformance

Client = TestClient[Any, Any]


class Caller:
    """Sends a request, checks its status, then checks the answer against the document."""

    def __init__(self, client: Client, conformance: Conformance) -> None:
        self.client = client
        self.doc = conformance

    async def __call__(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        resp = await self.client.request(method, path, allow_redirects=False, **kwargs)
        body = await resp.read()
        assert resp.status == status, (method, path, resp.status, body[:300])
        self.doc.check(method, resp.url.path, resp.status, resp.content_type, body)
        if resp.content_type in ("application/json", "application/problem+json") and body:
            return await resp.json()
        return body.decode("utf-8", "replace")


@pytest.fixture
async def call(client: Client) -> Caller:
    spec = await (await client.get("/openapi.json")).json()
    return Caller(client, Conformance(spec))


async def test_api_answers_match_the_document(client: Client, call: Caller) -> None:
    signed = await call(
        "POST",
        "/api/v1/auth/signup",
        201,
        json={"username": "doc", "email": "doc@example.com", "password": "correct horse"},
    )
    auth = bearer(signed["token"])
    await call(
        "POST",
        "/api/v1/auth/signup",
        409,
        json={"username": "doc", "email": "d2@example.com", "password": "correct horse"},
    )
    await call("POST", "/api/v1/auth/signup", 400, json={"username": "x"})
    await call(
        "POST", "/api/v1/auth/login", 200, json={"username": "doc", "password": "correct horse"}
    )
    await call("POST", "/api/v1/auth/login", 401, json={"username": "doc", "password": "nope"})
    await call("GET", "/api/v1/me", 200, headers=auth)
    await call("GET", "/api/v1/me", 401)
    await call("GET", "/api/v1/photos", 401, headers={"Authorization": "Bearer nope"})
    await call("PATCH", "/api/v1/me", 200, json={"bio": "hello"}, headers=auth)
    await call("PATCH", "/api/v1/me", 400, json={"bio": 5}, headers=auth)
    await call(
        "PATCH",
        "/api/v1/me",
        413,
        data=b"{" + b" " * 70_000 + b"}",
        headers={**auth, "Content-Type": "application/json"},
    )

    photo = await upload_ready(client, signed["token"], imaging.jpeg_bytes(64, 48))
    pid = photo["id"]
    await call("GET", f"/api/v1/photos/{pid}", 200)
    await call("GET", "/api/v1/photos/123", 404)
    await call("GET", "/api/v1/photos", 200)
    await call("GET", "/api/v1/photos?limit=0", 400)
    await call("GET", "/api/v1/photos?cursor=", 400)
    await call("GET", "/api/v1/photos?user=doc&tag=none", 200)
    await call("GET", "/api/v1/users/doc/photos", 200)
    await call("GET", "/api/v1/users/nobody/photos", 404)
    await call("GET", "/api/v1/tags/none/photos", 200)
    await call("GET", "/api/v1/feed", 200, headers=auth)
    await call("GET", "/api/v1/feed", 401)
    form = FormData()
    form.add_field("file", b"not an image", filename="a.jpg", content_type="image/jpeg")
    await call("POST", "/api/v1/upload", 415, data=form, headers=auth)
    await call(
        "POST",
        "/api/v1/photos",
        400,
        data=b"x",
        headers={**auth, "Content-Type": "multipart/form-data"},
    )

    await call("PUT", f"/api/v1/photos/{pid}/like", 200, headers=auth)
    await call("DELETE", f"/api/v1/photos/{pid}/like", 200, headers=auth)
    await call("PUT", "/api/v1/photos/1/like", 404, headers=auth)
    comment = await call(
        "POST", f"/api/v1/photos/{pid}/comments", 201, json={"text": "hi"}, headers=auth
    )
    await call("POST", f"/api/v1/photos/{pid}/comments", 400, json={"text": ""}, headers=auth)
    await call("GET", f"/api/v1/photos/{pid}/comments", 200)
    await call("GET", f"/api/v1/photos/{pid}/comments?cursor=", 400)
    await call("DELETE", f"/api/v1/comments/{comment['id']}", 204, headers=auth)
    await call("DELETE", f"/api/v1/comments/{comment['id']}", 404, headers=auth)

    other = bearer(await signup(client, "other"))
    await call("GET", "/api/v1/users/doc", 200)
    await call("GET", "/api/v1/users/nobody", 404)
    await call("PUT", "/api/v1/users/doc/follow", 200, headers=other)
    await call("PUT", "/api/v1/users/doc/follow", 400, headers=auth)  # yourself
    await call("DELETE", "/api/v1/users/doc/follow", 200, headers=other)
    await call("GET", "/api/v1/users/doc/followers", 200)
    await call("GET", "/api/v1/users/doc/following?limit=101", 400)
    await call("GET", "/api/v1/me/follow-requests", 200, headers=auth)
    await call("POST", "/api/v1/me/follow-requests/other/approve", 404, headers=auth)
    await call("POST", "/api/v1/me/follow-requests/other/decline", 404, headers=auth)
    await call("GET", "/api/v1/search?q=doc", 200)
    await call("GET", "/api/v1/search", 400)
    await call("GET", "/api/v1/search?q=%20", 400)
    await call("GET", "/api/v1/notifications", 200, headers=auth)
    await call("POST", "/api/v1/notifications/read", 200, json={}, headers=auth)
    await call("POST", "/api/v1/notifications/read", 400, json={"up_to": 5}, headers=auth)

    url = photo["urls"]["large"]
    head = await client.get(url)
    await call("GET", url, 200)
    await call("GET", url, 304, headers={"If-None-Match": head.headers["ETag"]})
    await call("GET", url, 206, headers={"Range": "bytes=0-9"})
    await call("GET", url, 416, headers={"Range": "bytes=99999999-"})
    await call("GET", "/media/r/" + "0" * 64 + ".jpg", 404)

    await call("DELETE", f"/api/v1/photo/{pid}", 403, headers=other)
    await call("DELETE", f"/api/v1/photos/{pid}", 204, headers=auth)
    await call("DELETE", f"/api/v1/photo/{pid}", 404, headers=auth)
    await call("POST", "/api/v1/auth/logout", 204, headers=auth)
    for probe in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        await call("GET", probe, 200)
    await call("GET", "/static/app.css", 200)
    await call("GET", "/static/nothing.css", 404)


async def test_page_answers_match_the_document(client: Client, call: Caller) -> None:
    token = await signup(client, "owner")
    photo = (await (await upload(client, token, imaging.jpeg_bytes(32, 32))).json())["id"]
    await signup(client, "friend")
    for path in ("/", "/signup", "/login", "/logout", "/search", "/search?q=own", "/tags/x"):
        await call("GET", path, 200, headers=HTML)
    for path in ("/upload", "/notifications", "/settings", "/wallet"):
        await call("GET", path, 303, headers=HTML)  # anonymous: log in first
    await call("GET", "/?cursor=", 400, headers=HTML)
    await call("GET", "/?cursor=", 400)  # problem details for clients not asking for HTML
    await call("GET", "/search?q=" + "x" * 101, 400, headers=HTML)
    await call("GET", "/p/1", 404, headers=HTML)
    await call("GET", "/p/1", 404)
    await call("GET", "/u/nobody", 404, headers=HTML)
    await call("GET", "/tags/" + "x" * 100, 404)

    # Forms: the CSRF token, the body, then the form's own answers.
    await call("POST", "/signup", 403, data={"username": "web"}, headers=HTML)
    await call("POST", "/signup", 403, data={"username": "web"})
    await call("POST", "/signup", 400, data=b"x", headers={"Content-Type": "multipart/form-data"})
    await call("POST", "/signup", 415, data=b"x", headers={"Content-Type": "text/plain"})
    await call(
        "POST",
        "/signup",
        413,
        data=b"x=" + b"a" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    csrf = await csrf_of(client, "/signup")
    taken = {
        "csrf_token": csrf,
        "username": "owner",
        "email": "o@example.com",
        "password": "correct horse",
    }
    await call("POST", "/signup", 409, data=taken, headers=HTML)
    await call(
        "POST",
        "/login",
        401,
        data={"csrf_token": csrf, "username": "owner", "password": "wrong"},
        headers=HTML,
    )
    await call("POST", "/signup", 303, data={**taken, "username": "web"}, headers=HTML)
    csrf = await csrf_of(client, "/")
    form = {"csrf_token": csrf}
    for path in ("/upload", "/notifications", "/settings", "/wallet", f"/p/{photo}", "/u/owner"):
        await call("GET", path, 200, headers=HTML)
    await call("POST", "/wallet/topup", 303, data={**form, "amount": "5"})
    await call(
        "POST", "/wallet/tip", 409, data={**form, "to": "owner", "amount": "6"}, headers=HTML
    )
    await call(
        "POST", "/wallet/tip", 404, data={**form, "to": "ghost", "amount": "1"}, headers=HTML
    )
    await call("POST", "/wallet/tip", 303, data={**form, "to": "owner", "amount": "1"})
    await call("GET", f"/p/{photo}?cursor=", 400, headers=HTML)
    await call("POST", f"/p/{photo}/like", 303, data=form)
    await call("POST", f"/p/{photo}/unlike", 303, data=form)
    await call("POST", "/p/1/like", 404, data=form, headers=HTML)
    await call("POST", f"/p/{photo}/comments", 303, data={**form, "text": "nice"})
    await call("POST", f"/p/{photo}/comments", 400, data={**form, "text": ""}, headers=HTML)
    await call("POST", "/comments/1/delete", 404, data=form)
    await call("POST", f"/p/{photo}/delete", 403, data=form, headers=HTML)  # not the owner
    await call("POST", "/u/owner/follow", 303, data=form)
    await call("POST", "/u/web/follow", 400, data=form, headers=HTML)  # yourself
    await call("POST", "/u/nobody/follow", 404, data=form)
    await call("POST", "/u/owner/unfollow", 303, data=form)
    await call("POST", "/u/owner/requests/friend/approve", 403, data=form, headers=HTML)
    await call("POST", "/u/web/requests/friend/decline", 404, data=form)
    await call("POST", "/notifications/read", 303, data=form)
    await call("POST", "/settings", 303, data={**form, "bio": "hi"})
    await call("POST", "/settings", 400, data={**form, "bio": "x" * 400}, headers=HTML)
    await call("POST", "/upload", 400, data=b"x", headers={"Content-Type": "multipart/form-data"})
    await call("POST", "/logout", 303, data=form)
    assert re.search(r"csrf_token", await call("GET", "/login", 200, headers=HTML))
    seen = {(m, p) for m, p, _ in call.doc.seen}
    pages = {(m, p) for m, p, s in call.doc.seen if not p.startswith("/api/")}
    assert len(pages) >= 25, sorted(seen)


async def test_the_document_says_what_each_input_must_be(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()

    def parameters(path: str, method: str = "get") -> dict[str, Any]:
        return {p["name"]: p for p in spec["paths"][path][method].get("parameters", [])}

    q = parameters("/api/v1/search")["q"]
    assert q["required"] is True and q["schema"]["minLength"] == 1
    assert parameters("/search")["q"]["required"] is False  # the page shows an empty form
    lists = [
        (path, method)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if any(p["name"] == "cursor" for p in op.get("parameters", []))
    ]
    assert len(lists) >= 14
    for path, method in lists:
        cursor = parameters(path, method)["cursor"]["schema"]
        assert cursor["minLength"] == 1 and cursor["pattern"] == "^[A-Za-z0-9_-]+$", path
        assert "400" in spec["paths"][path][method]["responses"], path
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if op["tags"] == ["pages"] and method == "post":
                assert {"400", "403", "413", "415"} <= set(op["responses"]), path
                assert "application/x-www-form-urlencoded" in op["requestBody"]["content"] or (
                    path == "/upload"
                ), path

"""Sign-up, log-in, log-out and /me over the REST API."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import bearer, signup

Client = TestClient[Any, Any]


async def test_signup_returns_user_and_token(client: Client) -> None:
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"username": "Alice.B", "email": "a@example.com", "password": "correct horse"},
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["user"]["username"] == "alice.b"  # case-insensitive: stored lower-case
    assert isinstance(body["user"]["id"], str) and body["user"]["id"].isdigit()
    assert body["token"].startswith("psh_")
    me = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status == 200
    assert (await me.json())["email"] == "a@example.com"


async def test_signup_rejects_bad_fields_with_problem_details(client: Client) -> None:
    resp = await client.post(
        "/api/v1/auth/signup", json={"username": "a!", "email": "nope", "password": "short"}
    )
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert {e["field"] for e in body["errors"]} == {"username", "email", "password"}
    assert body["status"] == 400 and body["title"] and body["type"]


async def test_signup_duplicate_username_any_case_is_409(client: Client) -> None:
    await signup(client, "carol")
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"username": "CAROL", "email": "other@example.com", "password": "correct horse"},
    )
    assert resp.status == 409
    assert (await resp.json())["errors"][0]["field"] == "username"


async def test_bad_json_is_400_naming_body(client: Client) -> None:
    resp = await client.post(
        "/api/v1/auth/signup", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["field"] == "body"
    resp = await client.post("/api/v1/auth/signup", json=[1, 2])
    assert resp.status == 400


async def test_login_wrong_password_and_unknown_user_look_the_same(client: Client) -> None:
    await signup(client, "dave")
    wrong = await client.post(
        "/api/v1/auth/login", json={"username": "dave", "password": "wrong password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "wrong password"}
    )
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["detail"] == (await unknown.json())["detail"]
    ok = await client.post(
        "/api/v1/auth/login", json={"username": "DAVE", "password": "correct horse"}
    )
    assert ok.status == 200


async def test_logout_revokes_the_token(client: Client) -> None:
    token = await signup(client, "erin")
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status == 204
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"


async def test_me_requires_auth(client: Client) -> None:
    resp = await client.get("/api/v1/me")
    assert resp.status == 401
    resp = await client.get("/api/v1/me", headers={"Authorization": "Basic abc"})
    assert resp.status == 401


async def test_patch_me_updates_and_validates(client: Client) -> None:
    token = await signup(client, "frank")
    resp = await client.patch(
        "/api/v1/me",
        json={"display_name": "Frank <b>", "bio": "hi", "private": True, "settings": {"a": 1}},
        headers=bearer(token),
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["display_name"] == "Frank <b>" and body["private"] is True
    assert body["settings"] == {"a": 1}
    bad = await client.patch(
        "/api/v1/me", json={"private": "yes", "username": "x"}, headers=bearer(token)
    )
    assert bad.status == 400
    assert {e["field"] for e in (await bad.json())["errors"]} == {"private", "username"}
    me = await (await client.get("/api/v1/me", headers=bearer(token))).json()
    assert me["bio"] == "hi"  # nothing of the bad request was written


async def test_unknown_route_and_method_are_problems(client: Client) -> None:
    resp = await client.get("/api/v1/nope")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    resp = await client.put("/api/v1/me")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"
    assert "Allow" in resp.headers

"""REST of the payments ledger: every answer checked against `/openapi.json`,
the errors as problem details naming their field, and a burst of concurrent
tips over HTTP that leaves the ledger whole."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from handlers.routes import ROUTES
from picshare import keys
from tests.conftest import bearer, signup, upload_ready
from tests.handlers.test_openapi_responses import Caller
from tests.openapi_conformance import Conformance

Client = TestClient[Any, Any]


@pytest.fixture
async def call(client: Client) -> Caller:
    spec = await (await client.get("/openapi.json")).json()
    return Caller(client, Conformance(spec))


def _auth(token: str) -> dict[str, str]:
    """Bearer token and a fresh Idempotency-Key (the money routes require one)."""
    return {**bearer(token), "Idempotency-Key": str(uuid.uuid4())}


async def test_wallet_topup_and_tip_over_rest(client: Client, call: Caller) -> None:
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    assert await call("GET", "/api/v1/wallet", 200, headers=bearer(alice)) == {
        "balance_cents": 0,
        "currency": "USD",
    }
    await call("GET", "/api/v1/wallet", 401)
    topped = await call(
        "POST", "/api/v1/wallet/topup", 201, json={"amount_cents": 3_000}, headers=_auth(alice)
    )
    assert (topped["kind"], topped["from"], topped["to"], topped["balance_cents"]) == (
        "topup",
        None,
        {"username": "alice"},
        3_000,
    )
    photo = await upload_ready(client, bob, imaging.jpeg_bytes(32, 32))
    tip = await call(
        "POST",
        "/api/v1/payments/tips",
        201,
        json={"to": "bob", "amount_cents": 250, "photo_id": photo["id"]},
        headers=_auth(alice),
    )
    assert (tip["kind"], tip["from"], tip["to"], tip["photo_id"], tip["balance_cents"]) == (
        "tip",
        {"username": "alice"},
        {"username": "bob"},
        photo["id"],
        2_750,
    )
    assert (await call("GET", "/api/v1/wallet", 200, headers=bearer(bob)))["balance_cents"] == 250
    inbox = await call("GET", "/api/v1/notifications", 200, headers=bearer(bob))
    assert [(n["kind"], n["text"], n["photo_id"]) for n in inbox["items"]] == [
        ("tip", "alice tipped you $2.50 for your photo", photo["id"])
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/v1/wallet/topup", {"amount_cents": 50_001}, 400, "amount_cents"),
        ("/api/v1/wallet/topup", {"amount_cents": 0}, 400, "amount_cents"),
        ("/api/v1/wallet/topup", {"amount_cents": "10"}, 400, "amount_cents"),
        ("/api/v1/wallet/topup", {}, 400, "amount_cents"),
        ("/api/v1/payments/tips", {"to": "bob", "amount_cents": 1_001}, 409, "amount_cents"),
        ("/api/v1/payments/tips", {"to": "bob", "amount_cents": 10_001}, 400, "amount_cents"),
        ("/api/v1/payments/tips", {"to": "alice", "amount_cents": 5}, 400, "to"),
        ("/api/v1/payments/tips", {"to": "ghost", "amount_cents": 5}, 404, "to"),
        ("/api/v1/payments/tips", {"amount_cents": 5}, 400, "to"),
        ("/api/v1/payments/tips", {"to": "bob", "amount_cents": 5, "photo_id": 7}, 400, "photo_id"),
        (
            "/api/v1/payments/tips",
            {"to": "bob", "amount_cents": 5, "photo_id": "7"},
            404,
            "photo_id",
        ),
    ],
)
async def test_bad_payments_are_problems_naming_the_field(
    client: Client, call: Caller, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    alice = await signup(client, "alice")
    await signup(client, "bob")
    await call(
        "POST", "/api/v1/wallet/topup", 201, json={"amount_cents": 1_000}, headers=_auth(alice)
    )
    problem = await call("POST", path, status, json=body, headers=_auth(alice))
    assert problem["status"] == status
    assert [e["field"] for e in problem["errors"]] == [field]
    # Nothing moved.
    wallet = await call("GET", "/api/v1/wallet", 200, headers=bearer(alice))
    assert wallet["balance_cents"] == 1_000


async def test_the_money_routes_are_marked_as_needing_an_idempotency_key() -> None:
    required = {(r.method, r.path) for r in ROUTES if r.idempotency == "required"}
    assert {("POST", "/api/v1/wallet/topup"), ("POST", "/api/v1/payments/tips")} <= required
    assert ("GET", "/api/v1/wallet") not in required


async def test_the_money_routes_refuse_a_request_without_a_key(client: Client) -> None:
    alice = await signup(client, "alice")
    await signup(client, "bob")
    for path, body in (
        ("/api/v1/wallet/topup", {"amount_cents": 500}),
        ("/api/v1/payments/tips", {"to": "bob", "amount_cents": 1}),
    ):
        resp = await client.post(path, json=body, headers=bearer(alice))
        assert resp.status == 400, path
        problem = await resp.json()
        assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    wallet = await (await client.get("/api/v1/wallet", headers=bearer(alice))).json()
    assert wallet["balance_cents"] == 0  # nothing moved


async def test_a_repeated_tip_moves_money_once(client: Client) -> None:
    alice = await signup(client, "alice")
    await signup(client, "bob")
    resp = await client.post(
        "/api/v1/wallet/topup", json={"amount_cents": 1_000}, headers=_auth(alice)
    )
    assert resp.status == 201
    headers = _auth(alice)
    first = await client.post(
        "/api/v1/payments/tips", json={"to": "bob", "amount_cents": 300}, headers=headers
    )
    again = await client.post(
        "/api/v1/payments/tips", json={"to": "bob", "amount_cents": 300}, headers=headers
    )
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    wallet = await (await client.get("/api/v1/wallet", headers=bearer(alice))).json()
    assert wallet["balance_cents"] == 700


async def test_concurrent_tips_over_http_keep_the_ledger_whole(client: Client) -> None:
    names = [f"user{i}" for i in range(6)]
    tokens = {n: await signup(client, n) for n in names}
    for token in tokens.values():
        resp = await client.post(
            "/api/v1/wallet/topup", json={"amount_cents": 1_000}, headers=_auth(token)
        )
        assert resp.status == 201

    async def tip(i: int) -> int:
        sender, receiver = names[i % 6], names[(i * 7 + 1) % 6]
        if sender == receiver:
            receiver = names[(i + 1) % 6]
        resp = await client.post(
            "/api/v1/payments/tips",
            json={"to": receiver, "amount_cents": 37 + i % 50},
            headers=_auth(tokens[sender]),
        )
        return resp.status

    statuses = await asyncio.gather(*(tip(i) for i in range(120)))
    # 409: not enough money. 503 (with Retry-After): the serializable retries
    # ran out under this contention on a loaded machine; nothing was written,
    # which the ledger's sums below check.
    assert set(statuses) <= {201, 409, 503}, statuses
    assert statuses.count(201) >= 30, statuses
    total = 0
    for token in tokens.values():
        body = await (await client.get("/api/v1/wallet", headers=bearer(token))).json()
        assert body["balance_cents"] >= 0
        total += body["balance_cents"]
    assert total == 6 * 1_000
    async with client.app[keys.DATABASES].payments.write() as conn:
        assert await conn.fetchval("SELECT coalesce(sum(amount_cents), 0) FROM ledger_entries") == 0
        tips = await conn.fetchval("SELECT count(*) FROM transfers WHERE kind = 'tip'")
    assert tips == statuses.count(201)


async def test_payment_retries_are_exported(client: Client) -> None:
    text = await (await client.get("/metrics")).text()
    assert "picshare_payment_retries_total 0.0" in text

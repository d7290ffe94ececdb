"""The PAYMENTS table group in a database of its own
(`PICSHARE_DATABASE_GROUP_PAYMENTS_URL`), a fresh empty one: the app makes
the ledger's tables there and only there, and top-ups and tips work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from picshare import keys
from picshare.app import create_app
from storage.table_groups import EVERY_DATABASE, TABLES
from tests.conftest import AiohttpClient, bearer, signup
from tests.groups_apart import empty_database, settings_apart
from tests.harness import PostgresForTests, tables_of

Client = TestClient[Any, Any]


@pytest.fixture
async def ledger_url(postgres: PostgresForTests) -> AsyncIterator[str]:
    async with empty_database(postgres, "payments") as url:
        yield url


async def test_the_ledger_in_its_own_database(
    tmp_path: Path,
    database_url: str,
    ledger_url: str,
    media_pool: Any,
    aiohttp_client: AiohttpClient,
) -> None:
    settings = settings_apart(tmp_path / "data", database_url, "payments", ledger_url)
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    resp = await client.post(
        "/api/v1/wallet/topup",
        json={"amount_cents": 900},
        headers={**bearer(alice), "Idempotency-Key": "topup-1"},
    )
    assert resp.status == 201, await resp.text()
    resp = await client.post(
        "/api/v1/payments/tips",
        json={"to": "bob", "amount_cents": 300},
        headers={**bearer(alice), "Idempotency-Key": "tip-1"},
    )
    assert resp.status == 201, await resp.text()
    wallet = await (await client.get("/api/v1/wallet", headers=bearer(bob))).json()
    assert wallet["balance_cents"] == 300

    # The group's tables and what every database has; no users, no photos.
    assert await tables_of(ledger_url) == TABLES["payments"] | EVERY_DATABASE
    ledger = await asyncpg.connect(ledger_url)
    try:
        assert await ledger.fetchval("SELECT count(*) FROM transfers") == 2
    finally:
        await ledger.close()
    # The users' database has its own (unused) ledger tables only when it
    # was made before the group moved out, as the suite's template was:
    # nothing is written there.
    shards = client.app[keys.DATABASES]
    assert shards.payments is not shards.catalog
    async with shards.catalog.read() as conn:
        assert await conn.fetchval("SELECT count(*) FROM transfers") == 0
    # The receiver's notification, written by a job of the ledger's database.
    notes = await (await client.get("/api/v1/notifications", headers=bearer(bob))).json()
    assert [n["kind"] for n in notes["items"]] == ["tip"]

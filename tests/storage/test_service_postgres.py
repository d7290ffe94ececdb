"""PicShare on the machine's own PostgreSQL service (15), as `PICSHARE_DATABASE_URL` would use.

The embedded default is PostgreSQL 18; this proves the migrations and a
request work on the older server operators are likely to run. Where no such
service exists the test is skipped, except in CI (`PICSHARE_REQUIRE_SERVICES=1`),
where it must run.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from picshare.app import create_app
from tests.conftest import make_settings, signup
from tests.harness import REQUIRE_SERVICES, SERVICE_DATABASE_URL, with_database


async def test_app_on_the_service_postgres(
    tmp_path: Any, media_pool: Any, aiohttp_client: Any
) -> None:
    try:
        admin = await asyncpg.connect(SERVICE_DATABASE_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if REQUIRE_SERVICES:
            raise AssertionError(f"PostgreSQL service at {SERVICE_DATABASE_URL}: {exc}") from exc
        pytest.skip(f"no PostgreSQL service at {SERVICE_DATABASE_URL}")
    name = f"picshare_svc_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = make_settings(tmp_path / "data", with_database(SERVICE_DATABASE_URL, name))
        client = await aiohttp_client(create_app(settings, media_pool=media_pool))
        token = await signup(client, "svc_user")
        resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        version = await admin.fetchval("SHOW server_version_num")
        assert int(version) >= 150000
        await client.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

"""A test server with some settings of its own, for the GraphQL tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from picshare.app import create_app
from tests.conftest import AiohttpClient, make_settings

ClientWith = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def client_with(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> ClientWith:
    """`await client_with(ratelimit={...})`: a client of an app with those settings."""

    async def make(**sections: dict[str, Any]) -> TestClient[Any, Any]:
        settings = make_settings(tmp_path / "data", database_url, **sections)
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(settings, media_pool=media_pool)
        )
        return client

    return make

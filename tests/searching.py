"""What a searcher sees, for the tests of search wherever its index lives
(tests/picshare/test_search_index.py, test_search_group.py)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import bearer


async def search(client: TestClient[Any, Any], q: str, token: str | None = None) -> dict[str, Any]:
    """GET /api/v1/search?q=`q` (as `token`'s user, else anonymous): its body."""
    headers = bearer(token) if token else {}
    resp = await client.get("/api/v1/search", params={"q": q}, headers=headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def photo_ids(body: dict[str, Any]) -> list[str]:
    """The ids of a search answer's photos, in its order."""
    return [p["id"] for p in body["photos"]]

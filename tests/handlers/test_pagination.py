"""Cursor pagination: no gaps, no duplicates, while photos keep arriving."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import signup
from tests.sharded import insert_photo, user_id

Client = TestClient[Any, Any]


async def test_pages_have_no_gaps_or_duplicates_under_concurrent_inserts(client: Client) -> None:
    await signup(client, "pager")
    owner = await user_id(client.app, "pager")
    before = {str(await insert_photo(client.app, owner, f"p{i}")) for i in range(57)}
    stop = asyncio.Event()

    async def keep_inserting() -> None:
        n = 0
        while not stop.is_set():
            await insert_photo(client.app, owner, f"new{n}")
            n += 1
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(keep_inserting())
    seen: list[str] = []
    cursor: str | None = None
    try:
        for path in ("/api/v1/photos", "/api/v1/users/pager/photos"):
            seen, cursor = [], None
            while True:
                query = f"?limit=7{'&cursor=' + cursor if cursor else ''}"
                body = await (await client.get(path + query)).json()
                seen += [p["id"] for p in body["items"]]
                cursor = body["next_cursor"]
                await asyncio.sleep(0.01)
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)), "a photo appeared twice"
            assert before <= set(seen), "a photo was skipped"
            assert [int(i) for i in seen] == sorted((int(i) for i in seen), reverse=True)
    finally:
        stop.set()
        await writer

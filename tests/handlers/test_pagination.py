"""Cursor pagination: no gaps, no duplicates, while photos keep arriving."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from picshare import keys
from tests.conftest import signup

Client = TestClient[Any, Any]

INSERT = (
    "INSERT INTO photos (owner_id, caption, mime, width, height, bytes, upload_key, status) "
    "VALUES ($1, $2, 'image/jpeg', 10, 10, 1, 'uploads/' || repeat('0', 64), 'ready') "
    "RETURNING id"
)


async def test_pages_have_no_gaps_or_duplicates_under_concurrent_inserts(client: Client) -> None:
    await signup(client, "pager")
    pool = client.app[keys.DATABASES].unrouted.primary.pool
    owner = await pool.fetchval("SELECT id FROM users WHERE username = 'pager'")
    before = {str(await pool.fetchval(INSERT, owner, f"p{i}")) for i in range(57)}
    stop = asyncio.Event()

    async def keep_inserting() -> None:
        n = 0
        while not stop.is_set():
            await pool.fetchval(INSERT, owner, f"new{n}")
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

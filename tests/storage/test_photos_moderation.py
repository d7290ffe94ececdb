"""The renditions and the verdict of one photo, committed in either order
while the other waits on the row: whichever commits last makes it ready,
and `photo.ready` is announced exactly once (storage/photos_repo.py)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from storage import photos_repo
from storage.db import Connection
from storage.records import ModerationState, PhotoStatus
from tests.conftest import AiohttpClient, make_settings, signup, upload

KEYS = {name: f"r/{name}.jpg" for name in ("original", "large", "medium", "thumb")}


async def _renditions(conn: Connection, photo_id: int) -> bool:
    status = await photos_repo.mark_ready(
        conn, photo_id, keys=KEYS, width=48, height=32, blurhash="LEHV6nWB2yk8"
    )
    assert status is not None
    return await photos_repo.announce_ready(conn, photo_id)


async def _approval(conn: Connection, photo_id: int) -> bool:
    assert await photos_repo.set_verdict(conn, photo_id, ModerationState.APPROVED)
    return await photos_repo.announce_ready(conn, photo_id)


@pytest.mark.parametrize("first", ["renditions", "approval"])
async def test_whichever_commits_last_makes_it_ready_once(
    tmp_path: Path,
    database_url: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
    first: str,
) -> None:
    settings = make_settings(
        tmp_path / "data",
        database_url,
        jobs={"enabled": False},  # nothing renders it but this test
        moderation={
            "url": "http://127.0.0.1:9/unused",
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "token": "0123456789abcdef",
        },
    )
    client: Any = await aiohttp_client(create_app(settings, media_pool=media_pool))
    alice = await signup(client, "alice")
    resp = await upload(client, alice, imaging.jpeg_bytes(48, 32))
    photo_id = int((await resp.json())["id"])
    db = client.app[keys.DATABASES].of_id(photo_id)
    steps = {"renditions": _renditions, "approval": _approval}
    later = next(name for name in steps if name != first)

    async with db.transaction() as conn:
        announced_first = await steps[first](conn, photo_id)
        assert announced_first is False  # the other part is missing

        async def second() -> bool:
            async with db.transaction() as other:
                return await steps[later](other, photo_id)

        # The second waits on the row lock until the first commits, then sees it.
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done()
    assert await waiting is True
    async with db.transaction() as conn:
        photo = await photos_repo.photo_by_id(conn, photo_id)
        assert photo is not None and photo.status == PhotoStatus.READY
        assert await photos_repo.announce_ready(conn, photo_id) is False  # once only

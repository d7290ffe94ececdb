"""A table group in a database of its own, for the tests of each group apart
(`PICSHARE_DATABASE_GROUP_<GROUP>_URL`): a fresh empty database (not the
suite's migrated template, so only what the group's migrations make is
there), the settings that put the group in it, and a wait for the jobs that
carry a change over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg

from picshare.config import Settings
from tests.conftest import make_settings
from tests.harness import PostgresForTests


@contextlib.asynccontextmanager
async def empty_database(postgres: PostgresForTests, group: str) -> AsyncIterator[str]:
    name = f"picshare_{group}_apart"
    yield await postgres.create_empty_database(name)
    await postgres.drop_database(name)


def settings_apart(data_dir: Path, database_url: str, group: str, url: str) -> Settings:
    """The suite's settings for `database_url`, with `group` in `url`."""
    settings = make_settings(data_dir, database_url)
    return settings.replace(database={f"group_{group}_url": url, "url": settings.database.url})


async def until(check: Callable[[], Any], want: Any) -> Any:
    """What `check()` returns once it is `want` (a job's work), or fail after 10 s."""
    got = None
    async with asyncio.timeout(10):
        while (got := await check()) != want:
            await asyncio.sleep(0.05)
    return got


async def count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()

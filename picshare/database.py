"""Which PostgreSQL to use: `database.url`, or the embedded one under the data dir."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from picshare.config import Settings
from storage.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)
EMBEDDED_DATABASE = "picshare"


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield a DSN; with no URL set, run the embedded server for the duration."""
    if settings.database.url:
        yield settings.database.url
        return
    server = EmbeddedPostgres(settings.data_path / "pg")
    # initdb and start are blocking subprocess calls: keep them off the loop.
    admin_dsn = await asyncio.to_thread(server.start)
    try:
        await _ensure_database(admin_dsn, EMBEDDED_DATABASE, settings.database.connect_timeout)
        yield _with_database(admin_dsn, EMBEDDED_DATABASE)
    finally:
        await asyncio.to_thread(server.stop)


async def _ensure_database(admin_dsn: str, name: str, timeout: float) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=timeout)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Identifiers cannot be bound parameters; `name` is our own constant.
            await conn.execute(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name)
    finally:
        await conn.close()


def _with_database(dsn: str, name: str) -> str:
    # The embedded DSN looks like postgresql://postgres@/postgres?host=/run/dir
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"

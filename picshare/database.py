"""Which PostgreSQL to use: `database.url` (and `database.replicas`), or the
embedded one under the data dir (with `database.embedded_replicas` streaming
replicas beside it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

import asyncpg

from picshare.config import Settings
from storage.embedded import EmbeddedPostgres
from storage.embedded_replicas import EmbeddedReplicas

log = logging.getLogger(__name__)
EMBEDDED_DATABASE = "picshare"


class DatabaseUrls(NamedTuple):
    primary: str
    replicas: tuple[str, ...]


@asynccontextmanager
async def database_urls(settings: Settings) -> AsyncIterator[DatabaseUrls]:
    """Yield the primary's DSN and its replicas'; with no URL set, run the
    embedded server and `database.embedded_replicas` replicas of it for the
    duration (replicas stopped first, then the primary)."""
    db = settings.database
    if db.url:
        yield DatabaseUrls(db.url, db.replicas)
        return
    async with _embedded(settings) as (server, admin_dsn):
        replicas = EmbeddedReplicas(
            settings.data_path,
            db.embedded_replicas,
            admin_dsn=admin_dsn,
            primary=server.address(),
            timeout=db.connect_timeout,
        )
        # Also with none: drops the slots of replicas an earlier start used,
        # which would otherwise keep the primary's WAL forever.
        async with replicas:
            yield DatabaseUrls(
                _with_database(admin_dsn, EMBEDDED_DATABASE),
                tuple(replicas.dsns(EMBEDDED_DATABASE)),
            )


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield the primary's DSN only (migrate, jobs, seed); with no URL set, run
    the embedded server for the duration, never its replicas."""
    if settings.database.url:
        yield settings.database.url
        return
    async with _embedded(settings) as (_server, admin_dsn):
        yield _with_database(admin_dsn, EMBEDDED_DATABASE)


@asynccontextmanager
async def _embedded(settings: Settings) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """The embedded server under the data dir, with PicShare's database in it,
    for the duration; yields the server and its admin DSN."""
    server = EmbeddedPostgres(settings.data_path / "pg")
    # initdb and start are blocking subprocess calls: keep them off the loop.
    admin_dsn = await asyncio.to_thread(server.start)
    try:
        await _ensure_database(admin_dsn, EMBEDDED_DATABASE, settings.database.connect_timeout)
        yield server, admin_dsn
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

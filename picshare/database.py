"""Which PostgreSQL to use: `database.url` (and `database.replicas`), or the
embedded one under the data dir (with `database.embedded_replicas` streaming
replicas beside it); with shards, one such database per shard
(`database.shards`, or `database.embedded_shards` embedded clusters)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
from redis.asyncio import Redis

from picshare.config import Settings
from storage.databases import PoolSizes, open_databases
from storage.embedded import EmbeddedPostgres
from storage.embedded_replicas import EmbeddedReplicas
from storage.migrate import migrate
from storage.router import Databases
from storage.shard_map import load_or_create
from storage.shard_routers import shard_router
from storage.shards import Shards
from storage.table_groups import EVERY_GROUP
from storage.wal_marks import MemoryMarks, RedisMarks, WalMarks

log = logging.getLogger(__name__)
EMBEDDED_DATABASE = "picshare"


class DatabaseUrls(NamedTuple):
    primary: str
    replicas: tuple[str, ...]


class Topology(NamedTuple):
    """Every database of the site: the shards in order (one without sharding),
    and the catalog's DSN when it is a database of its own (else the first shard)."""

    shards: tuple[DatabaseUrls, ...]
    catalog: str | None
    # Table groups with a database of their own: group -> DSN.
    groups: dict[str, str]


@asynccontextmanager
async def database_topology(settings: Settings) -> AsyncIterator[Topology]:
    """The site's databases for the duration, embedded ones started and stopped."""
    db = settings.database
    if db.shards:
        extra = [entry.split() for entry in db.shard_replicas]
        extra += [[] for _ in range(len(db.shards) - len(extra))]
        yield Topology(
            tuple(DatabaseUrls(u, tuple(r)) for u, r in zip(db.shards, extra, strict=True)),
            db.url or None,
            db.group_urls(),
        )
        return
    if db.embedded_shards <= 1:
        async with database_urls(settings) as urls:
            yield Topology((urls,), None, db.group_urls())
        return
    async with AsyncExitStack() as stack:
        shards = []
        for k in range(db.embedded_shards):
            # Shard 0 is the embedded database of a site without shards, so a
            # site that grows keeps its data where it was.
            base = settings.data_path if k == 0 else settings.data_path / f"shard-{k + 1}"
            shards.append(await stack.enter_async_context(_embedded_urls(settings, base)))
        yield Topology(tuple(shards), None, db.group_urls())


@asynccontextmanager
async def database_urls(settings: Settings) -> AsyncIterator[DatabaseUrls]:
    """Yield the primary's DSN and its replicas'; with no URL set, run the
    embedded server and `database.embedded_replicas` replicas of it for the
    duration (replicas stopped first, then the primary)."""
    db = settings.database
    if db.url:
        yield DatabaseUrls(db.url, db.replicas)
        return
    async with _embedded_urls(settings, settings.data_path) as urls:
        yield urls


@asynccontextmanager
async def _embedded_urls(settings: Settings, base: Path) -> AsyncIterator[DatabaseUrls]:
    """The embedded server under `base` and `database.embedded_replicas` replicas of it."""
    db = settings.database
    async with _embedded(settings, base) as (server, admin_dsn):
        replicas = EmbeddedReplicas(
            base,
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
async def _embedded(settings: Settings, base: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """The embedded server in `base`/pg, with PicShare's database in it,
    for the duration; yields the server and its admin DSN."""
    server = EmbeddedPostgres(base / "pg")
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


@asynccontextmanager
async def open_shards(
    settings: Settings,
    *,
    redis: Redis | None = None,
    command_timeout: float | None = None,
    migrated: dict[str, list[str]] | None = None,
) -> AsyncIterator[Shards]:
    """Every database of the site behind one `Shards` (storage/shards.py):
    started when embedded, migrated, the shard map loaded from the catalog
    (made on the first start); closed in reverse on the way out. `migrated`,
    when given, receives what each database applied now, by its label."""
    db = settings.database
    sizes = PoolSizes(
        db.pool_min,
        db.pool_max,
        command_timeout if command_timeout is not None else db.command_timeout,
        db.connect_timeout,
    )

    def opened(dsn: str, replicas: tuple[str, ...], name: str) -> Any:
        marks: WalMarks = (
            RedisMarks(
                redis, ttl=db.read_your_writes_ttl, timeout=settings.redis.timeout, namespace=name
            )
            if redis is not None
            else MemoryMarks(ttl=db.read_your_writes_ttl)
        )
        return open_databases(
            dsn,
            replicas,
            sizes=sizes,
            policy=db.replica_policy,
            max_lag=db.max_replica_lag,
            poll_interval=db.replica_poll_interval,
            marks=marks,
            name=name,
        )

    async with AsyncExitStack() as stack:
        topology = await stack.enter_async_context(database_topology(settings))
        several = len(topology.shards) > 1
        physical: list[Databases] = []
        for k, urls in enumerate(topology.shards, start=1):
            name = f"shard-{k}" if several else ""
            physical.append(
                await stack.enter_async_context(opened(urls.primary, urls.replicas, name))
            )
        catalog = None
        if topology.catalog is not None:
            catalog = await stack.enter_async_context(opened(topology.catalog, (), "catalog"))
        # A group's own database (one per distinct URL: groups may share one).
        apart = frozenset(topology.groups)
        hosted: dict[Databases, frozenset[str]] = dict.fromkeys(
            (*physical, *([catalog] if catalog else [])), EVERY_GROUP - apart
        )
        groups: dict[str, Databases] = {}
        by_url: dict[str, Databases] = {}
        for group, url in sorted(topology.groups.items()):
            if url not in by_url:
                by_url[url] = await stack.enter_async_context(opened(url, (), f"group-{group}"))
            groups[group] = by_url[url]
            hosted[by_url[url]] = hosted.get(by_url[url], frozenset()) | {group}
        for each, its_groups in hosted.items():
            async with each.write() as conn:
                applied = await migrate(conn, shard_id=db.shard_id, groups=its_groups)
            if applied:
                log.info("migrations applied on %s: %s", each.primary.label, ", ".join(applied))
            if migrated is not None:
                migrated[each.primary.label] = applied
        router = shard_router(
            db.shard_router,
            physical=len(physical),
            logical_shards=db.logical_shards,
            ranges=db.shard_ranges,
        )
        async with (catalog or physical[0]).write() as conn:
            shard_map = await load_or_create(
                conn,
                router=db.shard_router,
                placement=router.default_placement(len(physical)),
                physical=len(physical),
            )
        yield Shards(
            physical,
            router=router,
            shard_map=shard_map,
            catalog=catalog,
            budget=db.shard_budget,
            groups=groups,
        )

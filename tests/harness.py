"""Real servers for the tests: one PostgreSQL per session, a fresh database per test.

PostgreSQL is `PICSHARE_TEST_DATABASE_URL` when set (an admin DSN of a server
where databases may be created), else an embedded one in a temporary folder.
With `PICSHARE_REQUIRE_SERVICES=1` (CI), a service that cannot be reached
fails the run instead of being skipped.

With `PICSHARE_TEST_SHARDS=N` (N > 1) every test's app shards across N fresh
databases (the first holds the catalog), so the whole suite runs sharded, and
keeps its ledger in one more (the PAYMENTS table group's own database).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg

from storage.embedded import EmbeddedPostgres
from storage.migrate import migrate
from storage.replication import NOT_DURABLE

REQUIRE_SERVICES = os.environ.get("PICSHARE_REQUIRE_SERVICES") == "1"
TEST_SHARDS = int(os.environ.get("PICSHARE_TEST_SHARDS", "1"))
# A test's database URL -> the DSNs of all its shards (the URL's is the first).
SHARDS_OF: dict[str, tuple[str, ...]] = {}
# ... -> the DSN of its PAYMENTS table group's own database (sharded runs).
PAYMENTS_OF: dict[str, str] = {}
# The machine's own PostgreSQL service (CI machines have one; a laptop may not).
SERVICE_DATABASE_URL = os.environ.get(
    "PICSHARE_SERVICE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_env(database_url: str) -> dict[str, str]:
    """The environment a `run.py` process needs for the test's database: its
    shards' DSNs when the suite runs sharded (PICSHARE_TEST_SHARDS)."""
    shards = SHARDS_OF.get(database_url)
    if shards is None:
        return {"PICSHARE_DATABASE_URL": database_url}
    env = {"PICSHARE_DATABASE_URL": "", "PICSHARE_SHARDS": ",".join(shards)}
    if database_url in PAYMENTS_OF:
        env["PICSHARE_DATABASE_GROUP_PAYMENTS_URL"] = PAYMENTS_OF[database_url]
    return env


def missing_service(reason: str) -> NoReturn:
    """Skip on a laptop without the service; fail in CI, where it must be there."""
    import pytest

    if REQUIRE_SERVICES:
        pytest.fail(f"PICSHARE_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def with_database(dsn: str, name: str) -> str:
    head, sep, query = dsn.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"


@contextlib.contextmanager
def module_database(postgres: PostgresForTests) -> Iterator[str]:
    """For a module-scoped fixture (outside any loop): a fresh migrated
    database, sharded across as many with PICSHARE_TEST_SHARDS; dropped after."""
    names = [asyncio.run(postgres.create_database()) for _ in range(TEST_SHARDS)]
    urls = tuple(with_database(postgres.admin_dsn, name) for name in names)
    if len(urls) > 1:
        SHARDS_OF[urls[0]] = urls
    try:
        yield urls[0]
    finally:
        SHARDS_OF.pop(urls[0], None)
        for name in names:
            asyncio.run(postgres.drop_database(name))


async def tables_of(url: str) -> set[str]:
    """The tables a database has (a table group's own database holds only its group's)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


class PostgresForTests:
    """Creates a migrated template once, then one database per test from it.

    With `ahead` > 0, that many databases are kept made in advance, by a
    thread of their own, while the tests run: a CREATE DATABASE (a copy of
    the template, some 9 MB through the WAL: 130-300 ms) is then not in a
    test's set-up. They are copies of the same template, which nothing
    changes after `create_template`, so they are as fresh as one made on
    demand; those left at the end are dropped with the template."""

    def __init__(self, admin_dsn: str, *, ahead: int = 0) -> None:
        self.admin_dsn = admin_dsn
        self.template = f"picshare_tmpl_{uuid.uuid4().hex[:8]}"
        self._ahead = ahead
        self._made: collections.deque[concurrent.futures.Future[str]] = collections.deque()
        self._dropping: list[concurrent.futures.Future[None]] = []
        self._maker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db-ahead")

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_dsn, timeout=10)

    async def create_template(self) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(with_database(self.admin_dsn, self.template), timeout=10)
        try:
            await migrate(conn, shard_id=1)
        finally:
            await conn.close()

    async def create_database(self) -> str:
        """A fresh database from the template: one made in advance if any."""
        if not self._ahead:
            return await self._create_database()
        while len(self._made) <= self._ahead:
            self._made.append(self._maker.submit(self._create_in_thread))
        return await asyncio.wrap_future(self._made.popleft())

    def _create_in_thread(self) -> str:
        # The coroutine made here, not by the caller: one cancelled before it
        # ran would be a coroutine never awaited (an error under the suite's
        # filterwarnings).
        return asyncio.run(self._create_database())

    async def _create_database(self) -> str:
        name = f"picshare_test_{uuid.uuid4().hex[:12]}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        return name

    async def create_empty_database(self, name: str) -> str:
        """An empty database (not from the migrated template), made afresh; its DSN."""
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return with_database(self.admin_dsn, name)

    async def drop_database(self, name: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def drop_later(self, name: str) -> None:
        """Drop a database nothing uses any more (a finished test's) by the
        same thread, so no test waits for it; `drop_template` waits for all."""
        self._dropping.append(self._maker.submit(self._drop_in_thread, name))

    def _drop_in_thread(self, name: str) -> None:
        asyncio.run(self.drop_database(name))

    async def drop_template(self) -> None:
        """The databases made in advance and not used, those still being
        dropped, then the template."""
        for made in self._made:
            made.cancel()
        self._maker.shutdown(wait=True)
        for made in self._made:
            if not made.cancelled():
                await self.drop_database(made.result())
        self._made.clear()
        for dropping in self._dropping:
            dropping.result()  # a failed drop fails the session's teardown
        self._dropping.clear()
        await self.drop_database(self.template)


def start_postgres(tmp: Path) -> tuple[str, EmbeddedPostgres | None]:
    url = os.environ.get("PICSHARE_TEST_DATABASE_URL")
    if url:
        try:
            asyncio.run(_ping(url))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise RuntimeError(f"PICSHARE_TEST_DATABASE_URL is not reachable: {exc}") from exc
        return url, None
    server = EmbeddedPostgres(tmp / "pg")
    dsn = server.start()
    asyncio.run(_not_durable(dsn))
    return dsn, server


async def _not_durable(dsn: str) -> None:
    """The suite's own throwaway cluster skips fsync, as the shard and
    replica clusters do (storage/replication.py NOT_DURABLE): every test
    creates and drops databases, and each DROP DATABASE (and the checkpoint
    it waits for) otherwise fsyncs the whole cluster. Only a machine crash
    could tell the difference; no test makes one. Not done to a server given
    by PICSHARE_TEST_DATABASE_URL, which is not ours to reconfigure."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for name, value in NOT_DURABLE.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()

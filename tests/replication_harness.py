"""A real primary and two streaming replicas for the tests (storage/replication.py).

One set per session, on free ports under a temporary folder; a fresh,
migrated database per test. Nothing is simulated: lag is replay paused with
`pg_wal_replay_pause()`, a stopped server is really stopped (by pg_ctl, by
PID). Replicas are numbered from 0 here, as in `replica_dsns` (replica_dsns[0]
is the router's "replica-1").

The fixtures (tests/conftest.py): `replication` (session: the clusters) and
`replicated` (per test: a database on them, every server running and
replaying again when the test starts).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from storage.embedded_replicas import replayed
from storage.migrate import migrate
from storage.replication import Cluster, free_port, make_primary, make_replica

REPLICAS = 2


class Replication:
    """The session's clusters: a primary and REPLICAS streaming replicas."""

    def __init__(self, folder: Path, primary: Cluster, replicas: list[Cluster]) -> None:
        self.folder = folder
        self.primary = primary
        self.replicas = replicas
        self.template: str | None = None

    @classmethod
    def start(cls) -> Replication:
        folder = Path(tempfile.mkdtemp(prefix="picshare-test-replication-"))
        try:
            primary = make_primary(folder / "primary", free_port(), durable=False)
            # One after the other: in parallel, each waits on the other's checkpoint.
            replicas = [
                make_replica(primary.port, folder / f"replica-{i}", free_port(), durable=False)
                for i in range(REPLICAS)
            ]
        except BaseException:
            for path in folder.iterdir():
                Cluster(path, 0).kill()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, primary, replicas)

    def close(self) -> None:
        for cluster in [*self.replicas, self.primary]:
            cluster.kill()  # nothing to keep: no checkpoint
        shutil.rmtree(self.folder, ignore_errors=True)

    async def heal(self) -> None:
        """Every server running and every replica replaying (after a test stopped some)."""
        for cluster in [self.primary, *self.replicas]:
            if not cluster.is_running():
                await asyncio.to_thread(cluster.start)
        for i in range(len(self.replicas)):
            await self.resume(i)

    async def create_database(self) -> str:
        """A fresh migrated database, present on every replica when this returns."""
        if self.template is None:
            self.template = await self._make_template()
        name = f"picshare_test_{uuid.uuid4().hex[:12]}"
        await _execute(self.primary.dsn(), f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        await self.wait_caught_up()
        return name

    async def drop_database(self, name: str) -> None:
        await _execute(self.primary.dsn(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _make_template(self) -> str:
        name = f"picshare_tmpl_{uuid.uuid4().hex[:8]}"
        await _execute(self.primary.dsn(), f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(self.primary.dsn(name), timeout=10)
        try:
            await migrate(conn, shard_id=1)
        finally:
            await conn.close()
        return name

    async def stop_primary(self, *, crash: bool = False) -> None:
        """Stop the primary (`crash=True`: `stop -m immediate`, no checkpoint)."""
        await asyncio.to_thread(self.primary.kill if crash else self.primary.stop)

    async def start_primary(self) -> None:
        await asyncio.to_thread(self.primary.start)

    async def stop_replica(self, i: int) -> None:
        await asyncio.to_thread(self.replicas[i].stop)

    async def start_replica(self, i: int) -> None:
        await asyncio.to_thread(self.replicas[i].start)

    async def pause(self, i: int) -> None:
        """Replica i stops replaying WAL (it still receives it): it lags from now on.
        Returns once the pause took effect (a request alone may replay a bit more)."""
        await _execute(self.replicas[i].dsn(), "SELECT pg_wal_replay_pause()")
        conn = await asyncpg.connect(self.replicas[i].dsn(), timeout=10)
        try:
            deadline = time.monotonic() + 10
            while await conn.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica {i} did not pause")
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    async def resume(self, i: int) -> None:
        await _execute(self.replicas[i].dsn(), "SELECT pg_wal_replay_resume()")

    async def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Until every replica has replayed the primary's WAL as of now; a stopped
        or paused replica is not waited for."""
        conn = await asyncpg.connect(self.primary.dsn(), timeout=timeout)
        try:
            target = await conn.fetchval("SELECT pg_current_wal_lsn()::text", timeout=timeout)
        finally:
            await conn.close()
        deadline = time.monotonic() + timeout
        for i, replica in enumerate(self.replicas):
            while replica.is_running() and not await replayed(
                replica, target, timeout, paused_counts=True
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica {i} has not replayed {target} in {timeout} s")
                await asyncio.sleep(0.02)


class Replicated:
    """One test's database on the session's primary and replicas."""

    def __init__(self, replication: Replication, database: str) -> None:
        self.replication = replication
        self.database = database
        self.primary_dsn = replication.primary.dsn(database)
        self.replica_dsns = [r.dsn(database) for r in replication.replicas]
        self.stop_primary = replication.stop_primary
        self.start_primary = replication.start_primary
        self.stop_replica = replication.stop_replica
        self.start_replica = replication.start_replica
        self.pause = replication.pause
        self.resume = replication.resume
        self.wait_caught_up = replication.wait_caught_up


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        # Identifiers in CREATE/DROP DATABASE cannot be bound; ours are generated.
        await conn.execute(sql, timeout=10)
    finally:
        await conn.close()

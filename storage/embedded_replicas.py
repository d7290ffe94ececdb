"""Streaming replicas of the embedded PostgreSQL, for `run.py serve --replicas N`.

The primary stays the wheel's cluster in <data_dir>/pg (its data is the
same with or without replicas; its default configuration already has
`wal_level = replica`, WAL senders and trust for local replication). Each
replica lives in <data_dir>/pg-replica-<i>, streams from the primary's Unix
socket through a physical slot `picshare_replica_<i>` (so the primary keeps
the WAL a stopped replica still needs) and answers on a free TCP port of
127.0.0.1 chosen at each start.

A replica is re-made from a fresh base backup when its folder is missing or
is not a standby, when its slot is gone (the primary was re-initialised, or
the replica was unused by the last start), or when it fails to start. Slots
of replicas beyond N are dropped at start, so a replica no longer used does
not make the primary keep WAL forever. A replica left running by a killed
process is adopted and stopped with the rest.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import shutil
from pathlib import Path
from types import TracebackType
from typing import IO

import asyncpg

from storage.replication import (
    Cluster,
    ReplicationError,
    free_port,
    make_replica,
    set_primary_conninfo,
)

log = logging.getLogger(__name__)
SLOT_PREFIX = "picshare_replica_"
LOCK_FILE = "pg-replicas.lock"


class ReplicasBusy(RuntimeError):
    """Another process runs this data directory's embedded replicas."""


class EmbeddedReplicas:
    """Starts (making them when needed) and stops N replicas of the embedded primary."""

    __slots__ = ("_lock", "admin_dsn", "clusters", "count", "data_path", "primary", "timeout")

    def __init__(
        self,
        data_path: Path,
        count: int,
        *,
        admin_dsn: str,
        primary: tuple[str, int],
        timeout: float = 10.0,
    ) -> None:
        self.data_path = data_path.resolve()
        self.count = count
        self.admin_dsn = admin_dsn
        # The primary's Unix socket folder and port.
        self.primary = primary
        self.timeout = timeout
        self.clusters: list[Cluster] = []
        self._lock: IO[str] | None = None

    def dsns(self, database: str) -> list[str]:
        return [c.dsn(database) for c in self.clusters]

    async def start(self) -> None:
        if self.count:
            # Not with none: gunicorn workers share a data dir and its primary.
            self._take_lock()
        try:
            conn = await asyncpg.connect(self.admin_dsn, timeout=self.timeout)
            try:
                await self._drop_unused_slots(conn)
                for i in range(1, self.count + 1):
                    self.clusters.append(await self._start_one(conn, i))
                await self._wait_caught_up(conn)
            finally:
                await conn.close()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for cluster in reversed(self.clusters):
            log.info("stopping embedded replica %s", cluster.datadir.name)
            await asyncio.to_thread(cluster.stop)
        self.clusters.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def __aenter__(self) -> list[Cluster]:
        await self.start()
        return self.clusters

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _take_lock(self) -> None:
        # Two processes making or starting the same replica folders would
        # wreck them; the second is told, not queued.
        self.data_path.mkdir(parents=True, exist_ok=True)
        handle = (self.data_path / LOCK_FILE).open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ReplicasBusy(
                f"another PicShare process runs the embedded replicas of {self.data_path}"
            ) from None
        self._lock = handle

    async def _drop_unused_slots(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active",
            SLOT_PREFIX + "%",
            timeout=self.timeout,
        )
        for row in rows:
            suffix = row["slot_name"].removeprefix(SLOT_PREFIX)
            if not suffix.isdigit() or int(suffix) > self.count:
                log.info("dropping the replication slot %s (replica not used)", row["slot_name"])
                await _drop_slot(conn, row["slot_name"], self.timeout)

    async def _start_one(self, conn: asyncpg.Connection, i: int) -> Cluster:
        slot = f"{SLOT_PREFIX}{i}"
        datadir = self.data_path / f"pg-replica-{i}"
        cluster = Cluster(datadir, 0)
        usable = await self._usable(conn, cluster, slot)
        if usable:
            port = cluster.running_port()
            if port is not None:
                log.info("adopting the running embedded replica %s on port %d", datadir.name, port)
                cluster.port = port
                return cluster
            cluster.port = free_port()
            set_primary_conninfo(datadir, self._conninfo(i))
            try:
                await asyncio.to_thread(cluster.start)
                log.info("started embedded replica %s on port %d", datadir.name, cluster.port)
                return cluster
            except ReplicationError as exc:
                log.warning("embedded replica %s does not start (%s); re-making it", datadir, exc)
        return await self._remake(conn, cluster, slot, i)

    async def _usable(self, conn: asyncpg.Connection, cluster: Cluster, slot: str) -> bool:
        if not (cluster.datadir / "PG_VERSION").exists() or not cluster.is_standby:
            return False
        wal_status = await conn.fetchval(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
            slot,
            timeout=self.timeout,
        )
        # No slot: the WAL this replica needs may be gone. "lost": it is.
        return wal_status is not None and wal_status != "lost"

    async def _remake(
        self, conn: asyncpg.Connection, cluster: Cluster, slot: str, i: int
    ) -> Cluster:
        log.info("making embedded replica %s from a base backup", cluster.datadir.name)
        await asyncio.to_thread(cluster.stop)
        await asyncio.to_thread(shutil.rmtree, cluster.datadir, True)
        await _drop_slot(conn, slot, self.timeout)
        host, port = self.primary
        made = await asyncio.to_thread(
            make_replica,
            port,
            cluster.datadir,
            free_port(),
            primary_host=host,
            slot=slot,
            start=False,
        )
        # Its name, replica-<i>, shows in pg_stat_replication.
        set_primary_conninfo(made.datadir, self._conninfo(i))
        await asyncio.to_thread(made.start)
        return made

    def _conninfo(self, i: int) -> str:
        host, port = self.primary
        return f"host={host} port={port} user=postgres application_name=replica-{i}"

    async def _wait_caught_up(self, conn: asyncpg.Connection) -> None:
        """Until each replica has replayed the primary's WAL as of now (the app's
        database, made just before, is then there), or the timeout passes."""
        if not self.clusters:
            return
        target = await conn.fetchval("SELECT pg_current_wal_lsn()::text", timeout=self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                for cluster in self.clusters:
                    while not await replayed(cluster, target, self.timeout):  # noqa: ASYNC110 - polls another server
                        await asyncio.sleep(0.05)
        except TimeoutError:
            # Not fatal: the router skips a lagging replica until it catches up.
            log.warning("embedded replicas still behind the primary after %s s", self.timeout)


async def replayed(
    cluster: Cluster, target: object, timeout: float, *, paused_counts: bool = False
) -> bool:
    """Whether `cluster` has replayed the WAL up to `target` (a pg_lsn text);
    with `paused_counts`, a replica whose replay is paused counts as done."""
    try:
        conn = await asyncpg.connect(cluster.dsn(), timeout=timeout)
    except (OSError, asyncpg.PostgresError):
        return False
    paused = "pg_is_wal_replay_paused() OR " if paused_counts else ""
    try:
        return bool(
            await conn.fetchval(
                f"SELECT {paused}pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                str(target),
                timeout=timeout,
            )
        )
    finally:
        await conn.close()


async def _drop_slot(conn: asyncpg.Connection, slot: str, timeout: float) -> None:
    # A walsender lingers a moment after its replica stops: retry while "active".
    async with asyncio.timeout(timeout):
        while True:
            try:
                await conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = $1",
                    slot,
                    timeout=timeout,
                )
                return
            except asyncpg.ObjectInUseError:
                await asyncio.sleep(0.1)

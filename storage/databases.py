"""Opening the storage router: a pool per database, a watcher per database,
all closed in reverse on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from storage.db import Pool, create_pool
from storage.node import Node, Role
from storage.replicas import replica_policy
from storage.router import Databases
from storage.wal_marks import MemoryMarks, WalMarks
from storage.watch import LagClock, Watcher


@dataclass(frozen=True, slots=True)
class PoolSizes:
    min_size: int
    max_size: int
    command_timeout: float
    connect_timeout: float


@asynccontextmanager
async def open_databases(
    primary_dsn: str,
    replica_dsns: Sequence[str],
    *,
    sizes: PoolSizes,
    policy: str,
    max_lag: float,
    poll_interval: float,
    marks: WalMarks,
    name: str = "",
) -> AsyncIterator[Databases]:
    """The router over one primary and its replicas; `name` (a shard's, "shard-2")
    prefixes its databases' labels: "shard-2/primary", "shard-2/replica-1"."""
    prefix = f"{name}/" if name else ""
    async with AsyncExitStack() as stack:
        primary_pool = await create_pool(
            primary_dsn,
            min_size=sizes.min_size,
            max_size=sizes.max_size,
            command_timeout=sizes.command_timeout,
            connect_timeout=sizes.connect_timeout,
        )
        stack.push_async_callback(primary_pool.close)
        nodes = [Node(f"{prefix}primary", Role.PRIMARY, primary_pool)]
        for i, dsn in enumerate(replica_dsns, start=1):
            # min_size 0: a replica that is down at start does not stop the site.
            pool = await create_pool(
                dsn,
                min_size=0,
                max_size=sizes.max_size,
                command_timeout=sizes.command_timeout,
                connect_timeout=sizes.connect_timeout,
            )
            stack.push_async_callback(pool.close)
            nodes.append(Node(f"{prefix}replica-{i}", Role.REPLICA, pool))
        clock = LagClock()
        databases = Databases(
            nodes[0],
            nodes[1:],
            policy=replica_policy(policy),
            marks=marks,
            clock=clock,
            max_lag=max_lag,
            acquire_timeout=sizes.connect_timeout,
            name=name,
        )
        if replica_dsns:
            # With no replica nothing reads WAL positions: no task, no extra connection.
            watcher = Watcher(
                nodes,
                [primary_dsn, *replica_dsns],
                clock,
                interval=poll_interval,
                timeout=min(sizes.connect_timeout, max(1.0, poll_interval * 8)),
            )
            await watcher.start()
            stack.push_async_callback(watcher.close)
            databases.on_write = watcher.nudge
        yield databases


def primary_only(pool: Pool, *, acquire_timeout: float = 10.0) -> Databases:
    """A router over one pool the caller owns (tools and tests): no replica, no watcher."""
    return Databases(
        Node("primary", Role.PRIMARY, pool),
        policy=replica_policy("round_robin"),
        marks=MemoryMarks(ttl=1.0),
        clock=LagClock(),
        max_lag=0.0,
        acquire_timeout=acquire_timeout,
    )

"""The storage router (storage/router.py) against real streaming replicas: what
it costs, and where read-your-writes sends the reads.

1. Photo-detail reads per second (`photos_repo.photo_for`, random ids, 16
   tasks) through a bare asyncpg pool on the primary, the reference, then
   through the router with 0 replicas (over that same pool), 1 and 2
   replicas (`ANY`, round robin, every pool of the same size). The ratio
   router/bare is the router's overhead; with 2 shared cores more replicas
   add no CPU, so the figure shows the cost of choosing a node, not read
   scaling. Interleaved rounds, median kept (range shown): the machine is
   noisy.
2. A mixed load on 2 replicas: users who each write once (their bio, in a
   transaction) and then read 9 photos with `read_your_writes(user_id)`,
   beside users who only read. The share of reads served by the primary is
   what read-your-writes costs the primary: a writer's reads stay there until
   the watcher (polling every 0.25 s) sees a replica past their write; a
   reader who wrote nothing never needs it. Marks in memory (MemoryMarks).

It starts its own primary and 2 replicas (storage/replication.py, no fsync)
in a temporary folder, seeds a few thousand users and photos with plain SQL,
and kills the servers at the end, on error too. Each figure runs for a fixed
time; --quick shortens them and seeds less.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench._common import Options, Row, say, wait_quiet
from storage import photos_repo, users_repo
from storage.databases import PoolSizes, open_databases, primary_only
from storage.db import Connection, Pool, create_pool
from storage.migrate import migrate
from storage.replication import Cluster, free_port, make_primary, make_replica
from storage.router import ANY, Databases, read_your_writes
from storage.scope import open_scope
from storage.wal_marks import MemoryMarks

DATABASE = "picshare_bench"
REPLICAS = 2
TASKS = 16  # concurrent readers in phase 1, and every pool's size
WRITERS = 50  # phase 2: users who write, then read
READERS = 50  # phase 2: users who only read
READS_PER_WRITE = 9
# As the app's defaults (picshare/config.py DatabaseSettings).
POLL_INTERVAL = 0.25
MAX_LAG = 5.0
MARKS_TTL = 60.0
TIMEOUT = 10.0  # every connect and statement


@dataclass(frozen=True, slots=True)
class Plan:
    users: int
    photos: int
    rounds: int  # phase 1: interleaved rounds, the median kept
    read_seconds: float  # phase 1: each configuration, each round
    mixed_seconds: float  # phase 2


FULL = Plan(users=3000, photos=10_000, rounds=3, read_seconds=1.5, mixed_seconds=5.0)
QUICK = Plan(users=300, photos=1000, rounds=1, read_seconds=0.3, mixed_seconds=1.0)


# -- the servers ------------------------------------------------------------------


@asynccontextmanager
async def _clusters() -> AsyncIterator[tuple[Cluster, list[Cluster]]]:
    """A primary and REPLICAS streaming replicas, killed and removed on the way out."""
    folder = Path(tempfile.mkdtemp(prefix="picshare-bench-router-"))
    started: list[Cluster] = []
    try:
        primary = await asyncio.to_thread(
            make_primary, folder / "primary", free_port(), durable=False
        )
        started.append(primary)
        # One after the other: in parallel, each base backup waits on the other's checkpoint.
        for i in range(1, REPLICAS + 1):
            replica = await asyncio.to_thread(
                make_replica, primary.port, folder / f"replica-{i}", free_port(), durable=False
            )
            started.append(replica)
        yield primary, started[1:]
    finally:
        await asyncio.to_thread(_remove, folder)


def _remove(folder: Path) -> None:
    """Kill every server under `folder` (one whose start failed half-way too:
    it is found by its data directory), then delete it all."""
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        Cluster(path, 0).kill()
    shutil.rmtree(folder, ignore_errors=True)


async def _connect(dsn: str) -> Connection:
    conn: Connection = await asyncpg.connect(dsn, timeout=TIMEOUT, command_timeout=TIMEOUT)
    return conn


async def _prepare(primary: Cluster, plan: Plan) -> tuple[list[int], list[int], str]:
    """The bench database, migrated and seeded: its user ids, photo ids, and the
    primary's WAL position after the load (what the replicas must replay)."""
    conn = await _connect(primary.dsn())
    try:
        # An identifier cannot be bound; this one is a constant.
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
    conn = await _connect(primary.dsn(DATABASE))
    try:
        await migrate(conn, shard_id=1)
        # Plain SQL, generated in the server: the bench needs rows, not realism.
        await conn.execute(
            "INSERT INTO users (username, email, password_hash) "
            "SELECT 'bench' || g, 'bench' || g || '@example.com', 'x' "
            "FROM generate_series(1, $1::int) g",
            plan.users,
        )
        users = [int(r[0]) for r in await conn.fetch("SELECT id FROM users ORDER BY id")]
        await conn.execute(
            "INSERT INTO photos (owner_id, caption, tags, status, mime, width, height, bytes, "
            "upload_key) "
            "SELECT ($1::bigint[])[1 + g % array_length($1::bigint[], 1)], "
            "'photo ' || g, ARRAY['tag' || (g % 50)], 'ready', 'image/jpeg', 4032, 3024, "
            "2000000, 'uploads/bench-' || g FROM generate_series(1, $2::int) g",
            users,
            plan.photos,
        )
        photos = [int(r[0]) for r in await conn.fetch("SELECT id FROM photos")]
        await conn.execute("ANALYZE")
        target = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    finally:
        await conn.close()
    return users, photos, str(target)


async def _wait_replayed(replica: Cluster, target: str, timeout: float = 60.0) -> None:
    conn = await _connect(replica.dsn())
    try:
        deadline = time.monotonic() + timeout
        sql = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"
        while not await conn.fetchval(sql, target):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{replica!r} did not replay {target} in {timeout:.0f} s")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


# -- phase 1: reads per second ------------------------------------------------------


async def _rate(op: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Calls per second of `op` by TASKS tasks for `seconds`."""
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await op()
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return count / (time.perf_counter() - started)


async def _read_rates(
    bare: Pool, routers: dict[str, Databases], photos: list[int], plan: Plan
) -> list[Row]:
    rng = random.Random(1)

    async def through_pool() -> None:
        async with bare.acquire(timeout=TIMEOUT) as conn:
            await photos_repo.photo_for(conn, rng.choice(photos), None)

    def through(db: Databases) -> Callable[[], Awaitable[None]]:
        async def op() -> None:
            async with db.read(ANY) as conn:
                await photos_repo.photo_for(conn, rng.choice(photos), None)

        return op

    ops = {"bare pool (primary)": through_pool} | {k: through(v) for k, v in routers.items()}
    # One untimed short run each: replica pools open their connections lazily.
    for op in ops.values():
        await _rate(op, 0.2)
    rates: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(plan.rounds):
        # Interleaved, so a burst of other work on the machine hits every figure alike.
        for name, op in ops.items():
            rates[name].append(await _rate(op, plan.read_seconds))
    medians = {name: statistics.median(series) for name, series in rates.items()}
    reference = medians["bare pool (primary)"]
    how = f"{TASKS} tasks, median of {plan.rounds} x {plan.read_seconds:g} s"
    rows: list[Row] = []
    for name, rate in medians.items():
        figure = f"{rate:,.0f} reads/s"
        if plan.rounds > 1:  # the spread says how much the machine's noise weighs
            figure += f" ({min(rates[name]):,.0f}-{max(rates[name]):,.0f})"
        if name != "bare pool (primary)":
            figure += f", {rate / reference:.2f} x bare"
        rows.append((f"photo detail, {name}, {how}", figure))
    return rows


# -- phase 2: where read-your-writes sends the reads ---------------------------------


async def _mixed(db: Databases, users: list[int], photos: list[int], plan: Plan) -> list[Row]:
    writers, readers = users[:WRITERS], users[WRITERS : WRITERS + READERS]
    served: dict[str, Counter[str]] = {"writers": Counter(), "readers": Counter()}
    writes = 0
    deadline = time.perf_counter() + plan.mixed_seconds

    async def read(user_id: int, tally: Counter[str], rng: random.Random) -> None:
        # One scope per request, as the HTTP layer opens them; the signed-in user acts.
        scope = open_scope()
        scope.actor = user_id
        async with db.read(read_your_writes(user_id)) as conn:
            await photos_repo.photo_for(conn, rng.choice(photos), user_id)
        tally.update(scope.served)

    async def writer(user_id: int) -> None:
        nonlocal writes
        rng = random.Random(user_id)
        while time.perf_counter() < deadline:
            scope = open_scope()
            scope.actor = user_id
            async with db.transaction() as conn:
                await users_repo.update_user(conn, user_id, {"bio": f"bio {rng.random()}"})
            writes += 1
            for _ in range(READS_PER_WRITE):
                await read(user_id, served["writers"], rng)

    async def reader(user_id: int) -> None:
        rng = random.Random(user_id)
        while time.perf_counter() < deadline:
            await read(user_id, served["readers"], rng)

    started = time.perf_counter()
    await asyncio.gather(*(writer(u) for u in writers), *(reader(u) for u in readers))
    elapsed = time.perf_counter() - started
    total_reads = sum(sum(c.values()) for c in served.values())
    head = f"mixed, {WRITERS} users writing + {READERS} only reading, {plan.mixed_seconds:g} s"
    rows: list[Row] = [
        (head, f"{writes / elapsed:,.0f} writes/s, {total_reads / elapsed:,.0f} reads/s")
    ]
    for group, label in (
        ("writers", f"reads after their own write (1 write : {READS_PER_WRITE} reads)"),
        ("readers", "reads by users who wrote nothing (others write)"),
    ):
        tally = served[group]
        count = sum(tally.values())
        share = tally["primary"] / count if count else 0.0
        spread = ", ".join(f"{k} {v:,}" for k, v in sorted(tally.items()))
        rows.append((f"  on the primary: {label}", f"{share:.1%} of {count:,} ({spread})"))
    return rows


# -- the benchmark ------------------------------------------------------------------------


async def run(opts: Options) -> list[Row]:
    plan = QUICK if opts.quick else FULL
    sizes = PoolSizes(TASKS, TASKS, TIMEOUT, TIMEOUT)
    async with _clusters() as (primary, replicas):
        say(f"  primary and {len(replicas)} replicas started; seeding")
        users, photos, target = await _prepare(primary, plan)
        for replica in replicas:
            await _wait_replayed(replica, target)
        say(f"  {len(users):,} users, {len(photos):,} photos on every replica")
        primary_dsn = primary.dsn(DATABASE)
        replica_dsns = [r.dsn(DATABASE) for r in replicas]
        async with AsyncExitStack() as stack:
            bare = await create_pool(
                primary_dsn,
                min_size=TASKS,
                max_size=TASKS,
                command_timeout=TIMEOUT,
                connect_timeout=TIMEOUT,
            )
            stack.push_async_callback(bare.close)
            routers = {"router, 0 replicas": primary_only(bare, acquire_timeout=TIMEOUT)}
            for n in range(1, REPLICAS + 1):
                routers[
                    f"router, {n} replica{'s' if n > 1 else ''}"
                ] = await stack.enter_async_context(
                    open_databases(
                        primary_dsn,
                        replica_dsns[:n],
                        sizes=sizes,
                        policy="round_robin",
                        max_lag=MAX_LAG,
                        poll_interval=POLL_INTERVAL,
                        marks=MemoryMarks(ttl=MARKS_TTL),
                    )
                )
            await wait_quiet(max_wait=5 if opts.quick else 15)
            rows = await _read_rates(bare, routers, photos, plan)
            rows += await _mixed(routers["router, 2 replicas"], users, photos, plan)
    return rows

"""The durable job runner: retries with backoff, parking, lease takeover; with
shards, every shard's jobs, a stopped shard holding up only its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiojobs
import asyncpg
import pytest

from picshare.config import JobSettings
from picshare.database import open_shards
from picshare.jobs import JobKind, JobRunner, PermanentJobError
from storage.databases import primary_only
from storage.db import create_pool
from storage.router import PRIMARY, Databases
from storage.shards import Shards
from tests.shard_harness import ShardClusters
from tests.storage.test_shards import sharded


async def _pool(url: str) -> asyncpg.Pool:
    return await create_pool(url, min_size=1, max_size=4, command_timeout=10, connect_timeout=10)


async def _wait_status(pool: asyncpg.Pool, job_id: int, status: str, timeout: float = 15) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
            if row is not None and row["status"] == status:
                return row
            await asyncio.sleep(0.05)


def _settings(**kw: Any) -> JobSettings:
    base: dict[str, Any] = {
        "poll_interval": 0.1,
        "lease_seconds": 5,
        "backoff_base": 1.01,
        "max_attempts": 3,
    }
    return JobSettings(**{**base, **kw})


async def test_failing_job_is_retried_then_parked_with_its_error(database_url: str) -> None:
    pool = await _pool(database_url)
    calls: list[int] = []
    failed: list[str] = []

    async def flaky(payload: dict[str, Any]) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    async def on_failed(payload: dict[str, Any], error: str) -> None:
        failed.append(error)

    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(
        db=Shards.of_one(primary_only(pool)),
        settings=_settings(),
        scheduler=scheduler,
        kinds={"flaky": JobKind(flaky, on_failed)},
    )
    async with primary_only(pool).transaction() as conn:
        job_id = await runner.enqueue(conn, "flaky", {"x": 1})
    await runner.start()
    try:
        row = await _wait_status(pool, job_id, "failed")
    finally:
        await scheduler.close()
        await pool.close()
    assert len(calls) == 3
    assert row["attempts"] == 3
    assert "RuntimeError: boom" in row["last_error"]
    assert failed and "boom" in failed[0]


async def test_permanent_error_parks_at_once(database_url: str) -> None:
    pool = await _pool(database_url)

    async def bad(payload: dict[str, Any]) -> None:
        raise PermanentJobError("bad input")

    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(
        db=Shards.of_one(primary_only(pool)),
        settings=_settings(),
        scheduler=scheduler,
        kinds={"bad": JobKind(bad)},
    )
    async with primary_only(pool).transaction() as conn:
        job_id = await runner.enqueue(conn, "bad", {})
    await runner.start()
    try:
        row = await _wait_status(pool, job_id, "failed")
    finally:
        await scheduler.close()
        await pool.close()
    assert row["attempts"] == 1


async def test_job_of_a_dead_worker_is_taken_up_after_its_lease(database_url: str) -> None:
    pool = await _pool(database_url)
    done: list[dict[str, Any]] = []

    async def work(payload: dict[str, Any]) -> None:
        done.append(payload)

    # A job leased by a worker that died: running, lease just expired.
    job_id = await pool.fetchval(
        "INSERT INTO jobs (kind, payload, status, attempts, locked_by, locked_until) "
        "VALUES ('work', '{\"n\": 1}', 'running', 1, 'dead-worker', now() - interval '1 second') "
        "RETURNING id"
    )
    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(
        db=Shards.of_one(primary_only(pool)),
        settings=_settings(),
        scheduler=scheduler,
        kinds={"work": JobKind(work)},
    )
    await runner.start()
    try:
        row = await _wait_status(pool, job_id, "done")
    finally:
        await scheduler.close()
        await pool.close()
    assert done == [{"n": 1}]
    assert row["attempts"] == 2
    assert row["locked_by"] == runner.worker_id


async def test_two_runners_never_run_one_job_twice(database_url: str) -> None:
    pool = await _pool(database_url)
    seen: list[int] = []

    async def work(payload: dict[str, Any]) -> None:
        seen.append(int(payload["n"]))
        await asyncio.sleep(0.01)

    schedulers = [aiojobs.Scheduler(limit=None) for _ in range(2)]
    runners = [
        JobRunner(
            db=Shards.of_one(primary_only(pool)),
            settings=_settings(concurrency=4),
            scheduler=s,
            kinds={"work": JobKind(work)},
        )
        for s in schedulers
    ]
    async with primary_only(pool).transaction() as conn:
        for n in range(40):
            await runners[0].enqueue(conn, "work", {"n": n})
    for r in runners:
        await r.start()
    try:
        async with asyncio.timeout(20):
            while await pool.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'"):
                await asyncio.sleep(0.05)
    finally:
        for s in schedulers:
            await s.close()
        await pool.close()
    assert sorted(seen) == list(range(40))


async def test_a_kind_with_max_running_leaves_the_other_slots_free(database_url: str) -> None:
    # Slow jobs (a photo's full-size original) must not take every slot
    # while quick ones (the next photo's renditions) queue behind them.
    pool = await _pool(database_url)
    release = asyncio.Event()
    running: list[str] = []
    most_slow = 0
    quick_done = asyncio.Event()

    async def slow(payload: dict[str, Any]) -> None:
        nonlocal most_slow
        running.append("slow")
        most_slow = max(most_slow, running.count("slow"))
        await release.wait()
        running.remove("slow")

    async def quick(payload: dict[str, Any]) -> None:
        quick_done.set()

    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(
        db=Shards.of_one(primary_only(pool)),
        settings=_settings(concurrency=2, poll_interval=30),
        scheduler=scheduler,
        kinds={"slow": JobKind(slow, max_running=1), "quick": JobKind(quick)},
    )
    async with primary_only(pool).transaction() as conn:
        for n in range(3):
            await runner.enqueue(conn, "slow", {"n": n})
        quick_id = await runner.enqueue(conn, "quick", {})
    await runner.start()
    try:
        async with asyncio.timeout(5):
            await quick_done.wait()  # ran beside a slow one, not after all three
        assert most_slow == 1
        release.set()
        async with asyncio.timeout(10):
            while await pool.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'"):
                await asyncio.sleep(0.05)
        assert most_slow == 1
        assert (await _wait_status(pool, quick_id, "done"))["attempts"] == 1
    finally:
        release.set()
        await scheduler.close()
        await pool.close()


async def test_a_committed_job_starts_at_once_not_at_the_next_poll(database_url: str) -> None:
    pool = await _pool(database_url)
    started = asyncio.Event()

    async def work(payload: dict[str, Any]) -> None:
        started.set()

    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(
        db=Shards.of_one(primary_only(pool)),
        settings=_settings(poll_interval=30),
        scheduler=scheduler,
        kinds={"work": JobKind(work)},
    )
    await runner.start()
    try:
        await asyncio.sleep(0.2)  # the runner has polled once and sleeps for 30 s
        async with primary_only(pool).transaction() as conn:
            await runner.enqueue(conn, "work", {})
        runner.wake()
        async with asyncio.timeout(2):
            await started.wait()
    finally:
        await scheduler.close()
        await pool.close()


# -- with shards: each shard's jobs table, drained by one runner ------------------


async def _enqueue_on(runner: JobRunner, db: Databases, kind: str, payload: dict[str, Any]) -> int:
    async with db.transaction() as conn:
        return await runner.enqueue(conn, kind, payload)


async def test_the_runner_runs_the_jobs_of_every_shard(
    tmp_path: Path, shard_dsns: list[str]
) -> None:
    ran: list[str] = []

    async def work(payload: dict[str, Any]) -> None:
        ran.append(str(payload["on"]))

    async with open_shards(sharded(tmp_path, shard_dsns)) as shards:
        scheduler = aiojobs.Scheduler(limit=None)
        runner = JobRunner(
            db=shards, settings=_settings(), scheduler=scheduler, kinds={"work": JobKind(work)}
        )
        # Two on each: job ids are unique per shard only, so they may even be equal.
        for index, db in enumerate(shards.physical):
            for n in range(2):
                await _enqueue_on(runner, db, "work", {"on": f"shard-{index + 1}.{n}"})
        await runner.start()
        try:
            async with asyncio.timeout(15):
                # Done (recorded after each job ran), on both shards.
                while await _not_done(shards.physical):
                    await asyncio.sleep(0.05)
        finally:
            await scheduler.close()
        assert sorted(ran) == ["shard-1.0", "shard-1.1", "shard-2.0", "shard-2.1"]


async def _not_done(databases: Sequence[Databases]) -> int:
    left = 0
    for db in databases:
        async with db.read(PRIMARY) as conn:
            left += await conn.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'")
    return left


async def test_a_stopped_shard_holds_up_only_its_own_jobs(
    tmp_path: Path, shard_dsns: list[str], shard_clusters: ShardClusters
) -> None:
    ran: list[str] = []

    async def work(payload: dict[str, Any]) -> None:
        ran.append(str(payload["on"]))

    async with open_shards(sharded(tmp_path, shard_dsns, connect_timeout=2.0)) as shards:
        first, second = shards.physical
        scheduler = aiojobs.Scheduler(limit=None)
        runner = JobRunner(
            db=shards, settings=_settings(), scheduler=scheduler, kinds={"work": JobKind(work)}
        )
        await _enqueue_on(runner, second, "work", {"on": "second"})
        await asyncio.to_thread(shard_clusters.clusters[1].stop)
        await runner.start()
        try:
            # The first shard's jobs run while the second is down, even one
            # enqueued after the runner found the second shard gone.
            await _enqueue_on(runner, first, "work", {"on": "first"})
            runner.wake()
            async with asyncio.timeout(15):
                while "first" not in ran:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # several polls: the second's job still waits
            assert ran == ["first"]
            # Back: its job runs, nothing was lost.
            await asyncio.to_thread(shard_clusters.heal)
            async with asyncio.timeout(30):
                while "second" not in ran:
                    await asyncio.sleep(0.05)
        finally:
            await scheduler.close()
        assert ran == ["first", "second"]


@pytest.mark.one_pass  # one database of its own
async def test_a_runner_claims_only_the_kinds_it_runs(database_url: str) -> None:
    """Another service's job waits for that service: not claimed, not parked
    as unknown (picshare/services.py: each service runs its own kinds)."""
    pool = await _pool(database_url)
    ran: list[int] = []

    async def mine(payload: dict[str, Any]) -> None:
        ran.append(int(payload["n"]))

    scheduler = aiojobs.Scheduler(limit=None)
    runner = JobRunner(
        db=Shards.of_one(primary_only(pool)),
        settings=_settings(),
        scheduler=scheduler,
        kinds={"mine": JobKind(mine)},
    )
    runner.expect(["theirs"])
    async with primary_only(pool).transaction() as conn:
        theirs = await runner.enqueue(conn, "theirs", {"n": 0})
        first = await runner.enqueue(conn, "mine", {"n": 1})
    await runner.start()
    try:
        await _wait_status(pool, first, "done")
        await asyncio.sleep(0.3)  # a few more polls
        row = await pool.fetchrow("SELECT status, attempts FROM jobs WHERE id = $1", theirs)
    finally:
        await scheduler.close()
        await pool.close()
    assert ran == [1]
    assert row is not None and (row["status"], row["attempts"]) == ("queued", 0)

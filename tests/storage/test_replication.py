"""Real streaming replication from the bundled binaries: the test harness's
primary and replicas, and the embedded topology of `run.py serve --replicas N`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from picshare.config import Settings, SettingsError, load_settings
from picshare.database import database_urls
from storage.embedded_replicas import SLOT_PREFIX
from storage.replication import Cluster
from tests.replication_harness import Replicated

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass


async def _fetchval(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql, *args, timeout=5)
    finally:
        await conn.close()


async def _execute(dsn: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql, *args, timeout=5)
    finally:
        await conn.close()


async def _eventually(dsn: str, sql: str, *args: object, timeout: float = 10.0) -> object:
    """The first non-empty answer on `dsn` within `timeout` (replication is asynchronous)."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError):  # not up yet
                value = await _fetchval(dsn, sql, *args)
                if value is not None:
                    return value
            await asyncio.sleep(0.05)


async def _add_note(dsn: str, text: str) -> None:
    await _execute(dsn, "CREATE TABLE IF NOT EXISTS notes (body text NOT NULL)")
    await _execute(dsn, "INSERT INTO notes (body) VALUES ($1)", text)


NOTE = "SELECT body FROM notes WHERE body = $1"


async def test_a_row_written_on_the_primary_is_read_on_every_replica(
    replicated: Replicated,
) -> None:
    await _add_note(replicated.primary_dsn, "hello")
    for dsn in replicated.replica_dsns:
        assert await _eventually(dsn, NOTE, "hello") == "hello"


async def test_replicas_are_read_only_standbys(replicated: Replicated) -> None:
    assert await _fetchval(replicated.primary_dsn, "SELECT pg_is_in_recovery()") is False
    for dsn in replicated.replica_dsns:
        assert await _fetchval(dsn, "SELECT pg_is_in_recovery()") is True
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await _execute(dsn, "CREATE TABLE nope (x int)")


async def test_a_paused_replica_lags_until_resumed(replicated: Replicated) -> None:
    await _add_note(replicated.primary_dsn, "before")
    await replicated.wait_caught_up()
    await replicated.pause(0)
    await _add_note(replicated.primary_dsn, "during")

    assert await _eventually(replicated.replica_dsns[1], NOTE, "during") == "during"
    await asyncio.sleep(0.3)
    assert await _fetchval(replicated.replica_dsns[0], NOTE, "during") is None
    assert await _fetchval(replicated.replica_dsns[0], NOTE, "before") == "before"

    await replicated.resume(0)
    assert await _eventually(replicated.replica_dsns[0], NOTE, "during") == "during"


async def test_a_stopped_replica_catches_up_when_started(replicated: Replicated) -> None:
    await replicated.stop_replica(1)
    with pytest.raises(OSError):  # noqa: PT011 - connection refused, by any name
        await _fetchval(replicated.replica_dsns[1], "SELECT 1")
    await _add_note(replicated.primary_dsn, "while away")

    await replicated.start_replica(1)
    assert await _eventually(replicated.replica_dsns[1], NOTE, "while away") == "while away"


async def test_replicas_answer_while_the_primary_is_down_and_follow_it_back(
    replicated: Replicated,
) -> None:
    await _add_note(replicated.primary_dsn, "kept")
    await replicated.wait_caught_up()
    await replicated.stop_primary(crash=True)
    with pytest.raises(OSError):  # noqa: PT011 - connection refused, by any name
        await _fetchval(replicated.primary_dsn, "SELECT 1")
    for dsn in replicated.replica_dsns:
        assert await _fetchval(dsn, NOTE, "kept") == "kept"

    await replicated.start_primary()
    await _add_note(replicated.primary_dsn, "after")
    for dsn in replicated.replica_dsns:
        assert await _eventually(dsn, NOTE, "after") == "after"


# The embedded topology (`run.py serve --replicas N`), on a data dir of its own.


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: the server's user must traverse every parent
    # folder, and the wheel opens them for it; keep that to a folder of ours.
    folder = Path(tempfile.mkdtemp(prefix="picshare-test-embedded-replicas-"))
    yield folder
    for path in folder.glob("pg*"):
        if path.is_dir():
            Cluster(path, 0).kill()
    shutil.rmtree(folder, ignore_errors=True)


def _embedded(data_dir: Path, replicas: int) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICSHARE_")}
    return load_settings(
        env=env,
        overrides={
            "server": {"data_dir": str(data_dir)},
            "database": {"embedded_replicas": replicas},
        },
    )


async def test_serve_replicas_runs_streaming_replicas_of_the_embedded_database(
    data_dir: Path,
) -> None:
    settings = _embedded(data_dir, 1)
    async with database_urls(settings) as urls:
        assert len(urls.replicas) == 1
        await _add_note(urls.primary, "embedded")
        assert await _eventually(urls.replicas[0], NOTE, "embedded") == "embedded"
        assert await _fetchval(urls.replicas[0], "SELECT pg_is_in_recovery()") is True
        replica = Cluster(data_dir / "pg-replica-1", 0)
        assert replica.is_running()
    assert not replica.is_running()

    # Again: the same replica folder is started, not re-made, and it has
    # kept (and catches up on) the primary's data.
    marker = data_dir / "pg-replica-1" / "picshare-test-marker"
    marker.touch()
    async with database_urls(settings) as urls:
        await _add_note(urls.primary, "second run")
        assert await _eventually(urls.replicas[0], NOTE, "second run") == "second run"
        assert marker.exists()

    # A replica folder that is gone (or broken) is made again from a base backup.
    await asyncio.to_thread(shutil.rmtree, data_dir / "pg-replica-1")
    async with database_urls(settings) as urls:
        assert await _eventually(urls.replicas[0], NOTE, "second run") == "second run"
        assert not marker.exists()

    # Without replicas, the unused replica's slot goes: the primary keeps no WAL for it.
    async with database_urls(_embedded(data_dir, 0)) as urls:
        assert urls.replicas == ()
        slots = await _fetchval(
            urls.primary,
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
            SLOT_PREFIX + "%",
        )
        assert slots == 0


def test_embedded_replicas_refuse_an_external_database() -> None:
    env = {"PICSHARE_DATABASE_REPLICAS": "postgresql://127.0.0.1:5433/x"}
    with pytest.raises(SettingsError, match="embedded_replicas"):
        load_settings(env=env, overrides={"database": {"embedded_replicas": 1}})
    with pytest.raises(SettingsError, match="embedded_replicas"):
        load_settings(
            env={"PICSHARE_DATABASE_URL": "postgresql://127.0.0.1/x"},
            overrides={"database": {"embedded_replicas": 1}},
        )

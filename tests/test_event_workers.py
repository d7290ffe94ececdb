"""Renditions in worker processes of their own, through the real RabbitMQ:
the web process (`run.py serve`, consumers none) only accepts the upload; a
`run.py worker --consumers renditions` renders it. A worker killed with
SIGKILL holding the upload's message loses nothing: the broker gives the
unacknowledged message to the next worker, which makes the photo ready."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from tests import imaging
from tests.amqp_harness import AMQP_URL, amqp_exchange
from tests.harness import database_env
from tests.servers import ROOT, picshare_process, signup_over_http

__all__ = ["amqp_exchange"]  # the fixture, used by name

# Where rows live changes nothing here: the sharded pass leaves it out.
pytestmark = pytest.mark.one_pass

TIMEOUT = aiohttp.ClientTimeout(total=30)


class Workers:
    """`run.py worker` processes started by a test, all killed at its end."""

    def __init__(self, data_dir: Path, env: dict[str, str], logs: Path) -> None:
        self._data_dir = data_dir
        self.env = env
        self._logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, consumers: str) -> subprocess.Popen[bytes]:
        log = (self._logs / f"worker-{len(self.started)}.log").open("ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "worker", "--consumers", consumers],
                env={**os.environ, **self.env, "PICSHARE_DATA_DIR": str(self._data_dir)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    made = Workers(tmp_path / "data", {}, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


async def _status(
    session: aiohttp.ClientSession, base: str, photo_id: str, auth: dict[str, str]
) -> str:
    async with session.get(f"{base}/api/v1/photos/{photo_id}", headers=auth) as resp:
        assert resp.status == 200, await resp.text()
        status: str = (await resp.json())["status"]
        return status


async def _waiting(queue: str) -> int:
    """Messages ready in a queue (not those a consumer holds unacknowledged)."""
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)


async def _consuming(log: Path) -> None:
    """Until a worker's log says its consumers are attached."""
    async with asyncio.timeout(60):
        while "consuming" not in log.read_text(errors="replace"):
            await asyncio.sleep(0.1)


async def test_a_worker_killed_holding_the_upload_loses_nothing(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    amqp_exchange: str,
    workers: Workers,
) -> None:
    env = {
        **database_env(database_url),
        "PICSHARE_REDIS_URL": redis_url,
        "PICSHARE_AMQP_URL": AMQP_URL,
        "PICSHARE_EVENTS_EXCHANGE": amqp_exchange,
        "PICSHARE_EVENTS_RELAY_INTERVAL": "0.2",
        "PICSHARE_RATELIMIT_ENABLED": "false",
        "PICSHARE_SECRET_KEY": "process-test-secret-key",
        "PICSHARE_MEDIA_WORKERS": "1",
    }
    data_dir = tmp_path / "data"
    workers.env = {**env, "PICSHARE_EVENTS_PREFETCH": "1"}
    async with picshare_process(
        data_dir, {**env, "PICSHARE_EVENTS_CONSUMERS": "none"}, tmp_path / "web.log"
    ) as web:
        first = workers.start("renditions")
        await _consuming(tmp_path / "worker-0.log")
        # Frozen, its socket still open: the broker hands it the upload's
        # message, which it holds unacknowledged.
        first.send_signal(signal.SIGSTOP)
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            auth = await signup_over_http(session, web.base, "poster")
            form = aiohttp.FormData()
            jpeg = imaging.photo_jpeg_bytes(1600, 1200)
            form.add_field("file", io.BytesIO(jpeg), filename="a.jpg", content_type="image/jpeg")
            async with session.post(f"{web.base}/api/v1/upload", data=form, headers=auth) as resp:
                assert resp.status == 201, await resp.text()
                photo_id = (await resp.json())["id"]
            queue = f"{amqp_exchange}.renditions"
            await asyncio.sleep(2)  # relayed and delivered to the frozen worker
            assert await _waiting(queue) == 0, "the frozen worker should hold the message"
            # The web process renders nothing itself.
            assert await _status(session, web.base, photo_id, auth) == "processing"

            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            # Back in the queue, unrendered.
            async with asyncio.timeout(10):
                while await _waiting(queue) != 1:
                    await asyncio.sleep(0.1)
            assert await _status(session, web.base, photo_id, auth) == "processing"

            # Another worker gets the message back from the broker and renders it.
            workers.start("renditions")
            async with asyncio.timeout(60):
                while await _status(session, web.base, photo_id, auth) != "ready":
                    await asyncio.sleep(0.1)

            # The web process's /system lists the worker, heard through Redis
            # (this test's requests come from this machine).
            async with session.get(f"{web.base}/api/v1/system") as resp:
                assert resp.status == 200
                kinds = sorted(p["kind"] for p in (await resp.json())["processes"])
            assert set(kinds) == {"web", "worker"}  # and the killed one, until it expires

"""What a crash leaves behind: `run.py serve` killed with SIGKILL, then started again.

Real server processes, real media workers, the real embedded PostgreSQL. The
server is killed alone (`kill -9 <pid>`, not its process group), as the OOM
killer or an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests import imaging
from tests.harness import database_env
from tests.servers import free_port, postmasters_under

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = aiohttp.ClientTimeout(total=30)


class Serve:
    """One `run.py serve` process on a data dir, with its log."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, str(ROOT / "run.py"), "serve"),
                    *("--port", str(self.port), "--data-dir", str(data_dir)),
                ],
                env={
                    **{k: v for k, v in os.environ.items() if k != "PICSHARE_DATABASE_URL"},
                    "PICSHARE_SECRET_KEY": "lifecycle-test-secret-key",
                    **env,
                },
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            for _ in range(600):
                assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.base}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise AssertionError("the server did not become ready")


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _workers(pid: int) -> list[psutil.Process]:
    """The server's Python children: the media workers, their forkserver, the resource tracker."""
    return [p for p in _descendants(pid) if "python" in p.name().lower()]


@contextlib.contextmanager
def _reaped(data_dir: Path) -> Iterator[list[Serve]]:
    """Whatever the test outcome, nothing it started outlives it."""
    started: list[Serve] = []
    try:
        yield started
    finally:
        for serve in started:
            if serve.proc.poll() is None:
                serve.proc.kill()
                serve.proc.wait()
            # Its own session: the group outlives the server while any member lives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.proc.pid, signal.SIGKILL)
        postmasters = postmasters_under(data_dir / "pg")
        for proc in postmasters:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        psutil.wait_procs(postmasters, timeout=10)


async def _upload_and_wait_ready(base: str) -> tuple[str, dict[str, str]]:
    """Make the media pool start its workers: upload a photo and let it render."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        body = {"username": "crash", "email": "c@example.com", "password": "correct horse"}
        async with session.post(f"{base}/api/v1/auth/signup", json=body) as resp:
            assert resp.status == 201, await resp.text()
            headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        form = aiohttp.FormData()
        form.add_field("file", imaging.jpeg_bytes(640, 480), filename="x.jpg")
        async with session.post(f"{base}/api/v1/upload", data=form, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            photo_id = str((await resp.json())["id"])
        await _wait_photo(session, base, photo_id, headers)
    return photo_id, headers


async def _wait_photo(
    session: aiohttp.ClientSession, base: str, photo_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            async with session.get(f"{base}/api/v1/photos/{photo_id}", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                photo: dict[str, Any] = await resp.json()
            if photo["status"] != "processing":
                assert photo["status"] == "ready"
                return photo
            await asyncio.sleep(0.2)


def _assert_all_gone(procs: list[psutil.Process], within: float) -> None:
    _, alive = psutil.wait_procs(procs, timeout=within)
    described = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in alive if p.is_running()]
    assert not described, f"left running after the server was killed: {described}"


async def test_media_workers_die_with_a_killed_server(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    with _reaped(data_dir) as started:
        env = {**database_env(database_url), "PICSHARE_MEDIA_WORKERS": "2"}
        serve = Serve(data_dir, tmp_path / "serve.log", env)
        started.append(serve)
        await serve.wait_ready()
        await _upload_and_wait_ready(serve.base)
        workers = _workers(serve.proc.pid)
        assert workers, "the upload should have started media workers"

        serve.proc.kill()
        serve.proc.wait()
        _assert_all_gone(workers, within=5)


async def test_a_restart_after_a_kill_adopts_the_embedded_database_and_stops_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "pg"
    with _reaped(data_dir) as started:
        first = Serve(data_dir, tmp_path / "first.log", {"PICSHARE_MEDIA_WORKERS": "1"})
        started.append(first)
        await first.wait_ready()
        photo_id, headers = await _upload_and_wait_ready(first.base)
        first.proc.kill()
        first.proc.wait()

        second = Serve(data_dir, tmp_path / "second.log", {"PICSHARE_MEDIA_WORKERS": "1"})
        started.append(second)
        await second.wait_ready()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            # The data the killed server committed is there.
            await _wait_photo(session, second.base, photo_id, headers)
        assert len(postmasters_under(pgdata)) == 1, "one PostgreSQL for the data dir"

        second.proc.send_signal(signal.SIGINT)
        assert second.proc.wait(60) == 0, second.log_path.read_text()[-3000:]
        deadline = time.monotonic() + 10
        while postmasters_under(pgdata) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not postmasters_under(pgdata), (
            "a clean stop left the embedded PostgreSQL running: "
            + second.log_path.read_text()[-3000:]
        )

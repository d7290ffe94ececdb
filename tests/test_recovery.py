"""A crash between the upload's commit and its job's end loses nothing.

The real server runs as a subprocess (`run.py serve`). It is started with the
job runner off, so the upload commits its row and job but nothing renders; it
is then killed with SIGKILL, started again with jobs on, and the photo
becomes `ready`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

import aiohttp

import tests.imaging as imaging

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    data_dir: Path, database_url: str, port: int, log: IO[bytes], *, jobs: bool
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PICSHARE_DATABASE_URL": database_url,
        "PICSHARE_JOBS_ENABLED": "true" if jobs else "false",
        "PICSHARE_JOBS_LEASE_SECONDS": "5",
        "PICSHARE_MEDIA_WORKERS": "1",
        "PICSHARE_SECRET_KEY": "recovery-test-secret-key",
    }
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        # Its own process group: after the SIGKILL, the pool workers it leaves
        # orphaned are reaped with killpg instead of outliving the test.
        start_new_session=True,
    )


def _reap_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


async def _wait_healthy(session: aiohttp.ClientSession, base: str) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def test_sigkill_after_upload_commit_then_restart_renders(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=30)
    log = (tmp_path / "server.log").open("wb")
    server = _start(data_dir, database_url, port, log, jobs=False)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await _wait_healthy(session, base)
            async with session.post(
                f"{base}/api/v1/auth/signup",
                json={"username": "crash", "email": "c@example.com", "password": "correct horse"},
            ) as resp:
                token = (await resp.json())["token"]
            form = aiohttp.FormData()
            form.add_field("file", imaging.jpeg_bytes(640, 480), filename="x.jpg")
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{base}/api/v1/upload", data=form, headers=headers) as resp:
                assert resp.status == 201
                photo_id = (await resp.json())["id"]
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        _reap_group(server.pid)

        server = _start(data_dir, database_url, port, log, jobs=True)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await _wait_healthy(session, base)
            async with asyncio.timeout(60):
                while True:
                    async with session.get(
                        f"{base}/api/v1/photos/{photo_id}", headers=headers
                    ) as resp:
                        photo = await resp.json()
                    if photo["status"] != "processing":
                        break
                    await asyncio.sleep(0.2)
            assert photo["status"] == "ready"
            async with session.get(f"{base}{photo['urls']['thumb']}") as resp:
                assert resp.status == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        _reap_group(server.pid)
        log.close()

"""PicShare as real server processes (`run.py serve`), for tests across processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], base: str) -> None:
        self.proc = proc
        self.base = base

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Signal the server, wait for it, then reap its group (pool workers)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return int(self.proc.returncode)


@contextlib.asynccontextmanager
async def picshare_process(
    data_dir: Path, env: dict[str, str], log_path: Path
) -> AsyncIterator[ServerProcess]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "run.py"),
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env={
                **os.environ,
                "PICSHARE_MEDIA_WORKERS": "1",
                "PICSHARE_SECRET_KEY": "process-test-secret-key",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        server = ServerProcess(proc, f"http://127.0.0.1:{port}")
        try:
            await _wait_healthy(server, log_path)
            yield server
        finally:
            server.stop()


async def _wait_healthy(server: ServerProcess, log_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{server.base}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become healthy")


async def signup_over_http(session: aiohttp.ClientSession, base: str, name: str) -> dict[str, str]:
    """Sign `name` up on a real server; return its bearer header."""
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
    async with session.post(f"{base}/api/v1/auth/signup", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def postmasters_under(folder: Path) -> list[psutil.Process]:
    """The PostgreSQL servers whose data directory lies under `folder`."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(folder) in cmdline:
            found.append(proc)
    return found

"""PicShare as real server processes (`run.py serve`), for tests across processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil

from tests.harness import database_env

ROOT = Path(__file__).resolve().parent.parent


def run_command(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    """`run.py ARGS` on the test's database (its shards, when sharded), with
    no other PICSHARE_ setting of the test run's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICSHARE_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        env={**env, **database_env(database_url)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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


def spawn_serve(
    data_dir: Path,
    env: dict[str, str],
    log_path: Path,
    *args: str,
    port: int | None = None,
    scheme: str = "http",
) -> ServerProcess:
    """`run.py serve` on a free port (or `port`), in its own process group."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "run.py"), "serve"),
                *("--port", str(port), "--data-dir", str(data_dir), *args),
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
    return ServerProcess(proc, f"{scheme}://127.0.0.1:{port}")


def wait_listening(server: ServerProcess, log_path: Path, timeout: float = 60) -> None:
    """Blocking: until the server accepts connections (for fixtures outside a loop)."""
    port = int(server.base.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen: {log_path.read_text()[-2000:]}")


@contextlib.asynccontextmanager
async def picshare_process(
    data_dir: Path, env: dict[str, str], log_path: Path
) -> AsyncIterator[ServerProcess]:
    server = spawn_serve(data_dir, env, log_path)
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

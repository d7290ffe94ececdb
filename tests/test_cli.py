"""The command line as an operator uses it: `run.py serve` on the embedded
defaults (Ctrl-C stops server and database), `migrate`, `jobs`, bad settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from tests.harness import database_env

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_running(data_dir: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            return True
    return False


def test_serve_on_embedded_defaults_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PICSHARE_DATABASE_URL"}
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
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
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert server.poll() is None, (tmp_path / "serve.log").read_text()
                    assert time.monotonic() < deadline, "server did not become ready"
                    time.sleep(0.3)
            assert (data_dir / "pg" / "PG_VERSION").exists()
            assert _postgres_running(data_dir / "pg")
            server.send_signal(signal.SIGINT)
            assert server.wait(30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert not _postgres_running(data_dir / "pg"), "the embedded PostgreSQL was left running"


def test_migrate_and_jobs_commands(database_url: str) -> None:
    env = {**database_env(database_url)}
    first = _run("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "nothing" in first.stdout  # the test database is already migrated
    jobs = _run("jobs", "--status", "failed", env=env)
    assert jobs.returncode == 0, jobs.stderr
    assert "kind" in jobs.stdout and "status" in jobs.stdout


def test_a_wrong_setting_stops_the_start_with_its_name() -> None:
    result = _run("serve", env={"PICSHARE_SERVER_PORT": "eighty"})
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_serve_replicas_becomes_the_embedded_replicas_setting() -> None:
    # Replicas of the embedded database cannot go with a database of one's own.
    result = _run("serve", "--replicas", "1", env={"PICSHARE_DATABASE_URL": "postgresql://x/y"})
    assert result.returncode == 2
    assert "database.embedded_replicas" in result.stderr
    result = _run("serve", "--replicas", "-1")
    assert result.returncode == 2
    assert "database.embedded_replicas" in result.stderr


def test_shards_on_embedded_clusters_show_and_move(tmp_path: Path) -> None:
    """`--shards 2` with no database URL: two embedded clusters; `shards` shows
    the map, `shards move` moves a logical shard; a wrong count is refused."""
    data = ["--data-dir", str(tmp_path / "data")]
    env = {"PICSHARE_DATABASE_URL": "", "PICSHARE_SHARDS": ""}
    shown = _run("shards", "--shards", "2", *data, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "router: hash, 1024 logical shards, map version 0" in shown.stdout
    assert "shard-1/primary" in shown.stdout and "logical 0-511" in shown.stdout
    assert "shard-2/primary" in shown.stdout and "logical 512-1023" in shown.stdout
    assert (tmp_path / "data" / "shard-2" / "pg" / "PG_VERSION").exists()
    moved = _run("shards", "move", "3", "shard-2", "--shards", "2", *data, env=env)
    assert moved.returncode == 0, moved.stderr
    assert "moved logical shard 3 from shard-1/primary to shard-2/primary" in moved.stdout
    after = _run("shards", "--shards", "2", *data, env=env)
    assert "logical 0-2, 4-511" in after.stdout and "logical 3, 512-1023" in after.stdout
    fewer = _run("shards", *data, env=env)
    assert fewer.returncode == 2 and "add them back" in fewer.stderr
    assert "Traceback" not in fewer.stderr
    assert not _postgres_running(tmp_path / "data")

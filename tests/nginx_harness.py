"""Debian's nginx as a test server: a config in a temp folder, free loopback
ports, no daemon, stopped by PID; and a self-signed certificate for it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

from tests.harness import missing_service


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class Nginx:
    """One nginx master in `folder`, serving `config` (a whole nginx.conf)."""

    def __init__(self, folder: Path, ports: tuple[int, ...]) -> None:
        if shutil.which("nginx") is None:
            missing_service("nginx is not installed (deploy/system-packages.sh installs it)")
        self.folder = folder
        self.ports = ports
        for sub in ("logs",):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.conf = folder / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, config: str) -> None:
        self.conf.write_text(config)
        # Run as root (CI), the workers would become `nobody`, who cannot read
        # a pytest temp folder; they stay root instead.
        user = " user root;" if os.geteuid() == 0 else ""
        with (self.folder / "logs" / "stderr.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *("nginx", "-p", str(self.folder), "-c", str(self.conf)),
                    *("-e", str(self.folder / "logs" / "error.log")),
                    *("-g", f"daemon off; pid {self.folder / 'nginx.pid'};{user}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        for port in self.ports:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.errors()}")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=1),
                ):
                    break
                assert time.monotonic() < deadline, f"nginx did not listen: {self.errors()}"
                time.sleep(0.05)

    def reload(self, config: str) -> None:
        """A new configuration by SIGHUP; returns once only new workers serve.

        Callers close their keep-alive connections first, or old workers linger.
        """
        assert self.proc is not None
        master = psutil.Process(self.proc.pid)
        old = {p.pid for p in master.children()}
        self.conf.write_text(config)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while True:
            now = {p.pid for p in master.children()}
            if now and not now & old:
                return
            assert self.proc.poll() is None, self.errors()
            assert time.monotonic() < deadline, f"nginx did not reload: {self.errors()}"
            time.sleep(0.05)

    def errors(self) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.folder / "logs" / name).read_text()[-2000:]
        return text

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers, cache manager

"""A real S3 endpoint for the tests: moto's standalone server (`moto_server`),
one per session on a free loopback port, stopped by its PID; a fresh bucket
per test. `S3Gate` is a TCP relay in front of it that a test can cut (S3
unreachable, its state kept) and open again."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

from picshare.cluster import moto_server
from tests.harness import missing_service
from tests.tcp_gate import TcpGate

# moto accepts any credentials; these keep botocore from looking elsewhere.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "picshare-test",
    "AWS_SECRET_ACCESS_KEY": "picshare-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_server() -> str:
    found = moto_server()
    if found is None:
        missing_service("moto_server is not installed (requirements-dev.txt: moto[server])")
    return found


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """The endpoint URL of a running moto S3 server (with FAKE_AWS in os.environ)."""
    os.environ.update(FAKE_AWS)
    port = _free_port()
    proc = subprocess.Popen(
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    missing_service("moto_server did not start")
                time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def new_bucket_name() -> str:
    return f"picshare-test-{uuid.uuid4().hex[:16]}"


class S3Gate(TcpGate):
    """A loopback TCP relay to S3 (tests/tcp_gate.py) that a test can cut."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

"""A real S3 endpoint for the tests: moto's standalone server (`moto_server`),
one per session on a free loopback port, stopped by its PID; a fresh bucket
per test. `S3Gate` is a TCP relay in front of it that a test can cut (S3
unreachable, its state kept) and open again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.harness import missing_service

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
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return str(beside)
    found = shutil.which("moto_server")
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


class S3Gate:
    """A loopback TCP relay to `target` (host, port). `cut()` drops every
    connection and refuses new ones; `open()` lets them through again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            # A cut (the test closing the relay) ends the copy; so does EOF.
            try:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            # The test's loop is closing: the relay just ends (asyncio's stream
            # callback would log a cancelled handler as an error).
            return
        finally:
            self._writers -= {writer, up_writer}

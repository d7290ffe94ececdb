"""A `redis-server` of a test's own, on a free port, that the test may kill
(the shared one of tests/redis_harness.py must outlive every test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.harness import REQUIRE_SERVICES, missing_service


class OwnRedis:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("PICSHARE_REQUIRE_SERVICES=1 but redis-server is not installed")
        missing_service("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    folder = tempfile.mkdtemp(prefix="picshare-test-own-redis-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = OwnRedis(proc, f"redis://127.0.0.1:{port}/0")
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                break
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        client.close()
        yield server
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)

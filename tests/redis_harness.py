"""A real Redis for the tests: PICSHARE_TEST_REDIS_URL, else the machine's
service at 127.0.0.1:6379 (its own database number), else a `redis-server`
started here on a free port. Under PICSHARE_REQUIRE_SERVICES=1 a Redis that
cannot be had fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

TEST_DB = 9


def _reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
    except (redis.RedisError, OSError):
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str | None]:
    """Yield a Redis URL, or None when none can be had."""
    url = os.environ.get("PICSHARE_TEST_REDIS_URL")
    if url:
        yield url if _reachable(url) else None
        return
    service = f"redis://127.0.0.1:6379/{TEST_DB}"
    if _reachable(service):
        yield service
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="picshare-test-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    own = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if _reachable(own):
                break
            time.sleep(0.05)
        yield own
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)

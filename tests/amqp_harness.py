"""The RabbitMQ the tests use (PICSHARE_TEST_AMQP_URL, default the machine's
own at 127.0.0.1:5672), and a unique exchange name per test, whose queues
are deleted afterwards: runs side by side never see each other's events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import aio_pika
import pytest

from picshare.consumers import CONSUMER_NAMES
from tests.harness import missing_service
from tests.tcp_gate import TcpGate

AMQP_URL = os.environ.get("PICSHARE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture
async def amqp_exchange() -> AsyncIterator[str]:
    """A fresh exchange name; it and every queue named after it go at the end."""
    name = _fresh_name()
    yield name
    await _delete(name)


@contextlib.contextmanager
def module_exchange() -> Iterator[str]:
    """`amqp_exchange` for a module's fixture (not async: processes use it)."""
    name = _fresh_name()
    try:
        yield name
    finally:
        asyncio.run(_delete(name))


def _fresh_name() -> str:
    if not _reachable(AMQP_URL):
        missing_service(f"no RabbitMQ at {AMQP_URL}")
    return f"picshare-test-{uuid.uuid4().hex[:12]}"


async def _delete(name: str) -> None:
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        for consumer in (*CONSUMER_NAMES, "flaky"):
            for suffix in ("", ".retry", ".dead"):
                await channel.queue_delete(f"{name}.{consumer}{suffix}")
        await channel.exchange_delete(name)


class BrokerLink(TcpGate):
    """A TCP forwarder to the broker on a port of its own (tests/tcp_gate.py):
    `down()` closes it and cuts every connection through it (the broker seems
    gone to whoever uses the port), `up()` opens it again on the same port."""

    def __init__(self, target: str = AMQP_URL) -> None:
        parts = urlsplit(target)
        super().__init__(parts.hostname or "127.0.0.1", parts.port or 5672)
        self.url = f"amqp://{parts.username}:{parts.password}@127.0.0.1:{self.port}/"

    async def up(self) -> None:
        await self.open()

    async def down(self) -> None:
        await self.cut()

"""The RabbitMQ the tests use (PICSHARE_TEST_AMQP_URL, default the machine's
own at 127.0.0.1:5672), and a unique exchange name per test, whose queues
are deleted afterwards: runs side by side never see each other's events."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import pytest

from picshare.consumers import CONSUMER_NAMES
from tests.harness import missing_service

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
    if not _reachable(AMQP_URL):
        missing_service(f"no RabbitMQ at {AMQP_URL}")
    name = f"picshare-test-{uuid.uuid4().hex[:12]}"
    yield name
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        for consumer in (*CONSUMER_NAMES, "flaky"):
            for suffix in ("", ".retry", ".dead"):
                await channel.queue_delete(f"{name}.{consumer}{suffix}")
        await channel.exchange_delete(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerLink:
    """A TCP forwarder to the broker on a port of its own: `down()` closes it
    and cuts every connection through it (the broker seems gone to whoever
    uses the port), `up()` opens it again on the same port."""

    def __init__(self, target: str = AMQP_URL) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self.port = free_port()
        self.url = f"amqp://{parts.username}:{parts.password}@127.0.0.1:{self.port}/"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

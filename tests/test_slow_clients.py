"""Slow clients cannot hold connections: bounded time for a request's head and body.

A real `run.py serve` process and raw sockets, with small bounds set the way
an operator would (PICSHARE_SERVER_* variables).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from picshare.config import SettingsError, load_settings
from tests import imaging
from tests.harness import database_env
from tests.servers import ServerProcess, picshare_process

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
SLACK = 1.5
# A drip: one small piece this often, well inside any idle timeout.
DRIP = 0.2


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[ServerProcess]:
    env = {
        **database_env(database_url),
        "PICSHARE_SERVER_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "PICSHARE_SERVER_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "PICSHARE_RATELIMIT_ENABLED": "false",
    }
    async with picshare_process(tmp_path / "data", env, tmp_path / "serve.log") as process:
        yield process


def _port(server: ServerProcess) -> int:
    return int(server.base.rsplit(":", 1)[1])


async def _held_for(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, drip: bytes, limit: float
) -> tuple[float, bytes]:
    """Drip `drip` until the server closes the connection; how long that took, and
    what the server sent. Gives up (returns `limit`) if it never closes."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    received = b""
    try:
        while loop.time() - start < limit:
            try:
                data = await asyncio.wait_for(reader.read(4096), DRIP)
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
                continue
            if not data:
                return loop.time() - start, received
            received += data
    except ConnectionError:
        return loop.time() - start, received
    finally:
        writer.close()
    return limit, received


async def _slow_head(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
    held, _ = await _held_for(reader, writer, b"X-Slow: 1\r\n", limit=10)
    return held


async def test_slow_heads_are_cut_off_and_others_still_served(server: ServerProcess) -> None:
    port = _port(server)
    slow = [asyncio.create_task(_slow_head(port)) for _ in range(50)]
    await asyncio.sleep(HEADER_TIMEOUT / 2)
    async with aiohttp.ClientSession() as session, session.get(f"{server.base}/healthz") as resp:
        assert resp.status == 200
    held = await asyncio.gather(*slow)
    assert max(held) <= HEADER_TIMEOUT + SLACK, sorted(held)[-5:]


async def test_a_slow_head_after_a_request_on_the_same_connection_is_cut_off(
    server: ServerProcess,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    await asyncio.sleep(0.3)
    assert (await reader.read(65536)).startswith(b"HTTP/1.1 200")
    # An idle keep-alive connection is not a slow head...
    await asyncio.sleep(HEADER_TIMEOUT + SLACK)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    # ...but once a head starts, it has header_timeout to finish.
    held, _ = await _held_for(reader, writer, b"X-Slow: 1\r\n", limit=10)
    assert held <= HEADER_TIMEOUT + SLACK


async def test_a_slow_body_gets_408_and_the_connection_closes(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        b'{"username": "'
    )
    held, received = await _held_for(reader, writer, b"a", limit=10)
    assert held <= BODY_TIMEOUT + SLACK
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received[:300]
    assert b"application/problem+json" in head
    assert b'"body"' in body  # the field the problem names


async def test_an_upload_may_take_longer_than_body_timeout(server: ServerProcess) -> None:
    """Files have their own bound (uploads.read_timeout): a slow link still uploads."""
    async with aiohttp.ClientSession() as session:
        body = {"username": "slow", "email": "s@example.com", "password": "correct horse"}
        async with session.post(f"{server.base}/api/v1/auth/signup", json=body) as resp:
            assert resp.status == 201, await resp.text()
            token = (await resp.json())["token"]
    boundary = uuid.uuid4().hex
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    payload += imaging.jpeg_bytes(320, 240) + f"\r\n--{boundary}--\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    writer.write(
        f"POST /api/v1/upload HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
    )
    pieces = 10
    step = -(-len(payload) // pieces)
    for i in range(pieces):  # spread over about 2 x body_timeout
        writer.write(payload[i * step : (i + 1) * step])
        await writer.drain()
        await asyncio.sleep(2 * BODY_TIMEOUT / pieces)
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 201"), response[:500]


def test_the_bounds_are_settings() -> None:
    defaults = load_settings(env={})
    assert (defaults.server.header_timeout, defaults.server.body_timeout) == (10.0, 60.0)
    tuned = load_settings(env={"PICSHARE_SERVER_HEADER_TIMEOUT": "2.5"})
    assert tuned.server.header_timeout == 2.5
    with pytest.raises(SettingsError, match=r"server\.body_timeout"):
        load_settings(env={"PICSHARE_SERVER_BODY_TIMEOUT": "0"})

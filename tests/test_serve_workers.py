"""`run.py serve --workers N` and `--certfile/--keyfile`, as an operator runs them:
real processes on one port, Redis shared, a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests import imaging
from tests.harness import database_env
from tests.nginx_harness import self_signed_certificate
from tests.servers import ROOT, spawn_serve, wait_listening

# Its own databases, or nothing in it depends on where rows live: the
# sharded pass (PICSHARE_TEST_SHARDS) would run it the same way again.
pytestmark = pytest.mark.one_pass

TIMEOUT = aiohttp.ClientTimeout(total=30)


def test_workers_above_one_without_redis_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "serve", "--workers", "2"],
        env={"PATH": "/usr/bin:/bin", "PICSHARE_REDIS_URL": "", "PICSHARE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers 2 needs PICSHARE_REDIS_URL" in done.stderr
    assert "live notifications" in done.stderr  # it says why


def _listening(supervisor: int, port: int) -> int:
    """How many of the supervisor's workers listen on `port`."""
    count = 0
    for child in psutil.Process(supervisor).children():
        with contextlib.suppress(psutil.Error):
            conns = child.net_connections(kind="tcp")
            count += any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)
    return count


def _serving(supervisor: int, port: int) -> dict[int, int]:
    """Established connections on `port` held by each of the supervisor's workers."""
    held = {}
    for child in psutil.Process(supervisor).children():
        conns = child.net_connections(kind="tcp")
        held[child.pid] = sum(
            1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
    return held


async def _slow_body(chunks: list[bytes], started: asyncio.Event) -> AsyncIterator[bytes]:
    for i, chunk in enumerate(chunks):
        yield chunk
        if i == 0:
            started.set()
        await asyncio.sleep(0.3)


async def test_workers_share_the_port_and_stop_gracefully(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {**database_env(database_url), "PICSHARE_REDIS_URL": redis_url}
    log = tmp_path / "serve.log"
    server = spawn_serve(tmp_path / "data", env, log, "--workers", "2")
    port = int(server.base.rsplit(":", 1)[1])
    try:
        await asyncio.to_thread(wait_listening, server, log)
        deadline = time.monotonic() + 60
        while _listening(server.proc.pid, port) < 2:  # the second starts after the first
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            await asyncio.sleep(0.1)
        # A worker that dies is started again.
        killed = psutil.Process(server.proc.pid).children()[0]
        killed.kill()
        while _listening(server.proc.pid, port) < 2 or killed.is_running():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            await asyncio.sleep(0.1)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as session:
            body = {"username": "many", "email": "m@example.com", "password": "correct horse"}
            async with session.post(f"{server.base}/api/v1/auth/signup", json=body) as resp:
                assert resp.status == 201, await resp.text()
                auth = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            # 24 sockets: the kernel spreads them over both workers' listeners.
            sockets = [
                await session.ws_connect(
                    f"{server.base}/ws", headers={**auth, "Origin": server.base}
                )
                for _ in range(24)
            ]
            for ws in sockets:
                await ws.send_json({"type": "ping"})
                assert (await ws.receive_json(timeout=10))["type"] == "pong"
            held = _serving(server.proc.pid, port)
            assert len(held) == 2 and all(held.values()), held

            # Live notifications cross workers (Redis): every socket gets the follow.
            body = {"username": "fan", "email": "f@example.com", "password": "correct horse"}
            async with session.post(f"{server.base}/api/v1/auth/signup", json=body) as resp:
                fan = {"Authorization": f"Bearer {(await resp.json())['token']}"}
            async with session.put(f"{server.base}/api/v1/users/many/follow", headers=fan) as resp:
                assert resp.status in (200, 204), await resp.text()
            for ws in sockets:
                message = await ws.receive_json(timeout=10)
                assert (message["type"], message["kind"]) == ("notification", "follow")

            # A stop while an upload is still arriving: it finishes; the sockets get 1001.
            started = asyncio.Event()
            form = aiohttp.FormData()
            picture = imaging.jpeg_bytes(320, 240)
            form.add_field("file", picture, filename="x.jpg", content_type="image/jpeg")
            payload = form()
            encoded = bytearray()

            class Sink:
                async def write(self, data: bytes) -> None:
                    encoded.extend(data)

            await payload.write(Sink())  # type: ignore[arg-type]
            step = len(encoded) // 4 + 1
            pieces = [bytes(encoded[i : i + step]) for i in range(0, len(encoded), step)]
            upload = asyncio.create_task(
                session.post(
                    f"{server.base}/api/v1/upload",
                    data=_slow_body(pieces, started),
                    headers={**auth, "Content-Type": payload.content_type},
                )
            )
            await started.wait()
            await asyncio.sleep(0.3)  # the worker has taken the connection (accepted)
            server.proc.send_signal(signal.SIGTERM)
            resp = await upload
            assert resp.status == 201, await resp.text()
            resp.release()
            for ws in sockets:
                message = await ws.receive(timeout=15)
                assert message.type is aiohttp.WSMsgType.CLOSE, message
                assert message.data == aiohttp.WSCloseCode.GOING_AWAY
                await ws.close()
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
    finally:
        server.stop()


def test_a_key_that_is_no_key_stops_the_start(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "serve", "--certfile", str(cert)],
        env={"PATH": "/usr/bin:/bin", "PICSHARE_SERVER_KEYFILE": str(key)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "server.certfile / server.keyfile" in done.stderr


async def test_serve_terminates_tls_itself(tmp_path: Path, database_url: str) -> None:
    cert, key = self_signed_certificate(tmp_path)
    log = tmp_path / "serve.log"
    server = spawn_serve(
        tmp_path / "data",
        database_env(database_url),
        log,
        *("--certfile", str(cert), "--keyfile", str(key)),
        scheme="https",
    )
    try:
        await asyncio.to_thread(wait_listening, server, log)
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"{server.base}/healthz", ssl=context) as resp:
                assert resp.status == 200
            plain = server.base.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):  # plain HTTP spoken to a TLS port
                await session.get(f"{plain}/healthz")
    finally:
        server.stop()

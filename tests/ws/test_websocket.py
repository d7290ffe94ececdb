"""/ws against the app and real PostgreSQL: auth, live push, replay, ping."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from tests.conftest import bearer, signup, upload_ready

Client = TestClient[Any, Any]


async def _next_notification(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_json()
            if message.get("type") == "notification":
                return message


async def test_like_arrives_live_within_a_second(client: Client) -> None:
    owner = await signup(client, "live_owner")
    fan = await signup(client, "live_fan")
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(32, 32))
    async with client.ws_connect("/ws", headers=bearer(owner)) as ws:
        await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
        event = await _next_notification(ws, timeout=1)
    assert event["kind"] == "like"
    assert event["actor"] == {"username": "live_fan"}
    assert event["photo_id"] == photo["id"]
    assert event["text"] == "live_fan liked your photo"


async def test_token_query_and_ping(client: Client) -> None:
    token = await signup(client, "pinger")
    async with client.ws_connect(f"/ws?token={token}") as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json() == {"type": "pong"}


async def test_bad_or_missing_credentials_are_refused(client: Client) -> None:
    for url in ("/ws", "/ws?token=nope"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(url)
        assert info.value.status == 401


async def test_cookie_socket_checks_origin(client: Client) -> None:
    page = await (await client.get("/signup", headers={"Accept": "text/html"})).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    await client.post(
        "/signup",
        data={
            "csrf_token": csrf.group(1),
            "username": "cookie_ws",
            "email": "c@example.com",
            "password": "correct horse",
        },
    )
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
    assert info.value.status == 403
    own = str(client.make_url("/")).rstrip("/")
    async with client.ws_connect("/ws", headers={"Origin": own}) as ws:
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json())["type"] == "pong"


async def test_since_replays_what_was_missed_then_goes_live(client: Client) -> None:
    owner = await signup(client, "away")
    fans = [await signup(client, f"fan_{i}") for i in range(3)]
    photo = await upload_ready(client, owner, imaging.jpeg_bytes(32, 32))
    for fan in fans[:2]:
        await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fan))
    inbox = await (await client.get("/api/v1/notifications", headers=bearer(owner))).json()
    oldest = inbox["items"][-1]["id"]
    async with client.ws_connect(f"/ws?since={oldest}", headers=bearer(owner)) as ws:
        replayed = await _next_notification(ws)
        assert replayed["id"] == inbox["items"][0]["id"]  # only the one after `since`
        await client.put(f"/api/v1/photos/{photo['id']}/like", headers=bearer(fans[2]))
        live = await _next_notification(ws)
        assert live["actor"]["username"] == "fan_2"
    resp = await client.get("/ws?since=abc", headers=bearer(owner))
    assert resp.status == 400


async def test_a_socket_that_stops_reading_is_closed_not_buffered(
    settings: Any, media_pool: Any, aiohttp_client: Any
) -> None:
    import base64
    import os

    from picshare import keys
    from picshare.app import create_app

    small = settings.replace(ws={"send_queue": 8})
    client = await aiohttp_client(create_app(small, media_pool=media_pool))
    token = await signup(client, "sleepy")
    user_id = int(
        await client.app[keys.DATABASES]
        .of_username("sleepy")
        .primary.pool.fetchval("SELECT id FROM users WHERE username = 'sleepy'")
    )
    hub, bus = client.app[keys.HUB], client.app[keys.BUS]
    # A raw TCP client that does the handshake and then never reads: once its
    # 64 KiB stream buffer and the kernel's are full, the server's writes block.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws?token={token} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b" 101 " in await reader.readline()
    try:
        await asyncio.sleep(0.1)
        assert hub.count == 1
        event = {"type": "notification", "id": "99999999999", "kind": "like", "text": "x" * 4000}
        async with asyncio.timeout(30):
            while hub.count:
                await bus.publish(user_id, event)
                await asyncio.sleep(0)
    finally:
        writer.close()
    metrics = await (await client.get("/metrics")).text()
    assert "picshare_ws_slow_consumer_disconnects_total 1.0" in metrics

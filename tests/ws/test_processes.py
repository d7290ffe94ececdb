"""Two PicShare processes sharing PostgreSQL and Redis: a socket held by one
receives the notification caused by a request to the other."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp

import tests.imaging as imaging
from tests.harness import database_env
from tests.servers import picshare_process


async def _signup(session: aiohttp.ClientSession, base: str, name: str) -> str:
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
    async with session.post(f"{base}/api/v1/auth/signup", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["token"])


async def _ready_photo(session: aiohttp.ClientSession, base: str, token: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", imaging.jpeg_bytes(32, 32), filename="x.jpg")
    auth = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/api/v1/upload", data=form, headers=auth) as resp:
        photo_id = str((await resp.json())["id"])
    async with asyncio.timeout(30):
        while True:
            async with session.get(f"{base}/api/v1/photos/{photo_id}", headers=auth) as resp:
                if (await resp.json())["status"] == "ready":
                    return photo_id
            await asyncio.sleep(0.1)


async def test_event_crosses_processes_over_redis(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {**database_env(database_url), "PICSHARE_REDIS_URL": redis_url}
    async with (
        picshare_process(tmp_path / "data", env, tmp_path / "one.log") as one,
        picshare_process(tmp_path / "data", env, tmp_path / "two.log") as two,
        aiohttp.ClientSession() as session,
    ):
        owner = await _signup(session, one.base, "cross_owner")
        fan = await _signup(session, two.base, "cross_fan")
        photo_id = await _ready_photo(session, one.base, owner)
        async with session.ws_connect(f"{one.base}/ws?token={owner}") as ws:
            async with session.put(
                f"{two.base}/api/v1/photos/{photo_id}/like",
                headers={"Authorization": f"Bearer {fan}"},
            ) as resp:
                assert resp.status == 200
            async with asyncio.timeout(1.0):  # "within a second"
                event: Any = await ws.receive_json()
                while event.get("type") != "notification":
                    event = await ws.receive_json()
    assert event["kind"] == "like"
    assert event["actor"]["username"] == "cross_fan"


async def test_shutdown_closes_sockets_with_going_away(tmp_path: Path, database_url: str) -> None:
    env = {**database_env(database_url)}
    async with (
        picshare_process(tmp_path / "data", env, tmp_path / "s.log") as server,
        aiohttp.ClientSession() as session,
    ):
        token = await _signup(session, server.base, "leaving")
        async with session.ws_connect(f"{server.base}/ws?token={token}") as ws:
            server.proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(10):
                message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert message.data == 1001

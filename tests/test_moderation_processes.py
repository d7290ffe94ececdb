"""Moderation across real server processes (`run.py serve`): one process
only serves (no jobs), the other runs the consumers. An upload on the first
is delivered, signed, to the moderation receiver by the second; the
receiver's later verdict, posted to the first, shows the photo everywhere."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks.webhooks import Webhook

import tests.imaging as imaging
from picshare import webhook_signature
from tests.harness import database_env
from tests.servers import free_port, picshare_process, signup_over_http

TIMEOUT = aiohttp.ClientTimeout(total=30)
TOKEN = "process-moderation-token-0123"


async def _status(session: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> Any:
    async with session.get(url, headers=auth) as resp:
        return resp.status, await resp.json()


async def test_upload_on_one_process_verdict_through_the_other(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    secret = webhook_signature.new_secret()
    delivered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def moderate(request: web.Request) -> web.Response:
        body = await request.read()
        delivered.put_nowait(Webhook(secret).verify(body, dict(request.headers)))
        return web.Response(status=202)  # accepted, verdict later

    receiver = web.Application()
    receiver.router.add_post("/hook", moderate)
    runner = web.AppRunner(receiver)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {
        **database_env(database_url),
        "PICSHARE_REDIS_URL": redis_url,
        "PICSHARE_MODERATION_URL": f"http://127.0.0.1:{port}/hook",
        "PICSHARE_MODERATION_SECRET": secret,
        "PICSHARE_MODERATION_TOKEN": TOKEN,
    }
    try:
        async with (
            picshare_process(
                tmp_path / "data", {**env, "PICSHARE_JOBS_ENABLED": "false"}, tmp_path / "web.log"
            ) as web_process,
            # The same data directory: the blobs (local files) are shared.
            picshare_process(tmp_path / "data", env, tmp_path / "jobs.log") as jobs_process,
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
        ):
            base = web_process.base
            alice = await signup_over_http(session, base, "alice")
            form = aiohttp.FormData()
            form.add_field(
                "file",
                io.BytesIO(imaging.jpeg_bytes(40, 30)),
                filename="a.jpg",
                content_type="image/jpeg",
            )
            async with session.post(f"{base}/api/v1/upload", data=form, headers=alice) as resp:
                assert resp.status == 201, await resp.text()
                pid = (await resp.json())["id"]
            event = await asyncio.wait_for(delivered.get(), 20)
            assert (event["type"], event["data"]["photo_id"]) == ("photo.uploaded", pid)
            url = f"{base}/api/v1/photos/{pid}"
            # Rendered by the jobs process, and still waiting for the verdict.
            for _ in range(200):
                status, mine = await _status(session, url, alice)
                if mine["urls"]["large"]:
                    break
                await asyncio.sleep(0.1)
            assert mine["urls"]["large"] and mine["status"] == "processing"
            assert (await _status(session, url, {}))[0] == 404
            verdict = {"Authorization": f"Bearer {TOKEN}"}
            callback = f"{base}/api/v1/moderation/{pid}"
            async with session.post(callback, json={"verdict": "approve"}, headers=verdict) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["status"] == "ready"
            for server in (web_process, jobs_process):
                status, seen = await _status(session, f"{server.base}/api/v1/photos/{pid}", {})
                assert (status, seen["status"]) == (200, "ready")
            assert delivered.empty()  # one delivery: the job ended with the 202
    finally:
        await runner.cleanup()

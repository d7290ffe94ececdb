"""`run.py cluster`: the whole topology as real processes on this machine
(nginx, the gateway, five services with photos twice, two embedded shards
each with a replica, Redis, RabbitMQ, moto's S3), used through nginx the way
a person would, then stopped with Ctrl-C leaving nothing running."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests import imaging
from tests.amqp_harness import amqp_exchange
from tests.servers import ROOT, free_port, signup_over_http

__all__ = ["amqp_exchange"]  # the fixture, used by name

# Its own databases and processes: the sharded pass would run it the same way.
pytestmark = pytest.mark.one_pass
TIMEOUT = aiohttp.ClientTimeout(total=30)


async def test_the_cluster_serves_the_journey_and_stops_whole(
    tmp_path: Path, redis_url: str, amqp_exchange: str
) -> None:
    port = free_port()
    out = tmp_path / "cluster.out"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PICSHARE_")},
        "PICSHARE_REDIS_URL": redis_url,
        "PICSHARE_EVENTS_EXCHANGE": amqp_exchange,
    }
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "run.py"), "cluster"),
                *("--port", str(port), "--data-dir", str(tmp_path / "site")),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        async with asyncio.timeout(240):
            while "PicShare is up" not in out.read_text(errors="replace"):
                assert proc.poll() is None, out.read_text(errors="replace")[-3000:]
                await asyncio.sleep(0.5)
        table = out.read_text()
        for part in ("nginx", "gateway", "photos x2", "auth", "notifications", "search", "web"):
            assert re.search(rf"^{re.escape(part)}\s", table, re.MULTILINE), table
        assert "postgres shard 2 replica 1" in table and "s3 (moto)" in table
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 8, children

        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            auth = await signup_over_http(session, base, "cluster_user")
            form = aiohttp.FormData()
            jpeg = imaging.photo_jpeg_bytes(640, 480)
            form.add_field("file", io.BytesIO(jpeg), filename="a.jpg", content_type="image/jpeg")
            async with session.post(f"{base}/api/v1/upload", data=form, headers=auth) as resp:
                assert resp.status == 201, await resp.text()
                photo_id = (await resp.json())["id"]
            async with asyncio.timeout(60):
                while True:
                    async with session.get(f"{base}/api/v1/photos/{photo_id}") as resp:
                        photo = await resp.json()
                    if photo["status"] == "ready":
                        break
                    await asyncio.sleep(0.2)
            async with session.get(base + photo["urls"]["thumb"]) as resp:
                assert resp.status == 200 and resp.content_type == "image/jpeg"
            # This machine's client, through nginx and the gateway: /system
            # shows every process of the topology (each within a heartbeat).
            want = sorted(["gateway", "auth", "photos", "photos", "notifications"])
            want = sorted([*want, "search", "web"])
            kinds: list[str] = []
            async with asyncio.timeout(30):
                while kinds != want:
                    async with session.get(f"{base}/api/v1/system") as resp:
                        assert resp.status == 200, await resp.text()
                        system = await resp.json()
                    kinds = sorted(p["kind"] for p in system["processes"])
                    await asyncio.sleep(0.5)
        assert {d["role"] for d in system["databases"]} >= {"primary", "replica"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, out.read_text(errors="replace")[-3000:]
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [" ".join(p.cmdline())[:100] for p in left]

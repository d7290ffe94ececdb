"""`run.py serve --replicas 1` as an operator runs it: a real process on the
embedded database starts a streaming replica, reads reach it, and Ctrl-C
stops every server it started."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.servers import picshare_process, postmasters_under, signup_over_http


async def test_serve_with_an_embedded_replica_reads_from_it_and_stops_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"PICSHARE_DATABASE_EMBEDDED_REPLICAS": "1", "PICSHARE_DATABASE_URL": ""}
    async with (
        picshare_process(data, env, tmp_path / "serve.log") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        await signup_over_http(session, server.base, "alice")
        deadline = time.monotonic() + 15
        served = ""
        while "replica-1" not in served:
            assert time.monotonic() < deadline, served
            async with session.get(f"{server.base}/api/v1/users/alice/followers") as resp:
                assert resp.status == 200
                served = resp.headers.get("Server-Timing", "")
            await asyncio.sleep(0.1)
        async with session.get(f"{server.base}/readyz") as resp:
            ready = await resp.json()
        assert ready["checks"]["replica-1"] == "ok"
        assert len(postmasters_under(data)) >= 2  # the primary and its replica
        assert server.stop() == 0
    deadline = time.monotonic() + 15
    while postmasters_under(data):
        assert time.monotonic() < deadline, "a database server outlived Ctrl-C"
        await asyncio.sleep(0.2)

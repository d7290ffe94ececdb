"""A crash between the upload's commit and its job's end loses nothing.

The real server runs as a subprocess (`run.py serve`). It is started with the
job runner off, so the upload commits its row and job but nothing renders; it
is then killed with SIGKILL, started again with jobs on, and the photo
becomes `ready`.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from tests import imaging
from tests.harness import database_env
from tests.servers import picshare_process


async def test_sigkill_after_upload_commit_then_restart_renders(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = {**database_env(database_url), "PICSHARE_JOBS_LEASE_SECONDS": "5"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with picshare_process(
            data_dir, {**env, "PICSHARE_JOBS_ENABLED": "false"}, tmp_path / "first.log"
        ) as first:
            body = {"username": "crash", "email": "c@example.com", "password": "correct horse"}
            async with session.post(f"{first.base}/api/v1/auth/signup", json=body) as resp:
                token = (await resp.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            form = aiohttp.FormData()
            form.add_field("file", imaging.jpeg_bytes(640, 480), filename="x.jpg")
            async with session.post(
                f"{first.base}/api/v1/upload", data=form, headers=headers
            ) as resp:
                assert resp.status == 201
                photo_id = (await resp.json())["id"]
            # The crash: no shutdown, no chance to finish or release anything.
            first.stop(signal.SIGKILL)

        async with picshare_process(
            data_dir, {**env, "PICSHARE_JOBS_ENABLED": "true"}, tmp_path / "second.log"
        ) as second:
            async with asyncio.timeout(60):
                while True:
                    async with session.get(
                        f"{second.base}/api/v1/photos/{photo_id}", headers=headers
                    ) as resp:
                        photo = await resp.json()
                    if photo["status"] != "processing":
                        break
                    await asyncio.sleep(0.2)
            assert photo["status"] == "ready"
            async with session.get(f"{second.base}{photo['urls']['thumb']}") as resp:
                assert resp.status == 200

"""Idempotency-Key across real server processes (`run.py serve`).

Two PicShare processes on one PostgreSQL database get the same key at the
same moment: the claim in the database lets one of them run the request;
the other answers 409 (still running) or replays the first's answer. Each
key makes exactly one comment, and one photo for uploads.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp

import tests.imaging as imaging
from tests.harness import database_env
from tests.servers import picshare_process, signup_over_http

TIMEOUT = aiohttp.ClientTimeout(total=60)
KEYS = 8


async def _post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, bool, Any]:
    async with session.post(url, headers=headers, **kwargs) as resp:
        replayed = resp.headers.get("Idempotent-Replayed") == "true"
        return resp.status, replayed, await resp.json()


async def _wait_ready(session: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> None:
    for _ in range(300):
        async with session.get(url, headers=auth) as resp:
            if (await resp.json()).get("status") == "ready":
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the photo did not become ready")


def _upload_form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="x.jpg", content_type="image/jpeg")
    return form


async def test_one_key_sent_to_two_processes_has_one_effect(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {
        **database_env(database_url),
        "PICSHARE_REDIS_URL": redis_url,
    }
    # One process renders the photo (comments need it ready); the other only
    # serves. One blob store, as a site's processes share: whichever takes the
    # upload, the other renders it.
    async with (
        picshare_process(tmp_path / "data", env, tmp_path / "one.log") as one,
        picshare_process(
            tmp_path / "data", {**env, "PICSHARE_JOBS_ENABLED": "false"}, tmp_path / "two.log"
        ) as two,
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
    ):
        auth = await signup_over_http(session, one.base, "twice")
        data = imaging.jpeg_bytes(64, 64)
        uploads = await asyncio.gather(
            *(
                _post(
                    session,
                    f"{server.base}/api/v1/upload",
                    {**auth, "Idempotency-Key": "upload-1"},
                    data=_upload_form(data),
                )
                for server in (one, two)
            )
        )
        created = [body for status, replayed, body in uploads if status == 201 and not replayed]
        assert len(created) == 1, uploads
        for status, _replayed, body in uploads:
            assert status == 409 or (status == 201 and body["id"] == created[0]["id"]), uploads
        photo_id = created[0]["id"]
        async with session.get(f"{one.base}/api/v1/users/twice/photos", headers=auth) as resp:
            assert len((await resp.json())["items"]) == 1
        await _wait_ready(session, f"{one.base}/api/v1/photos/{photo_id}", auth)

        url = "{}/api/v1/photos/" + photo_id + "/comments"
        for i in range(KEYS):
            headers = {**auth, "Idempotency-Key": f"comment-{i}"}
            answers = await asyncio.gather(
                *(
                    _post(session, url.format(s.base), headers, json={"text": f"c{i}"})
                    for s in (one, two)
                )
            )
            first = [body for status, replayed, body in answers if status == 201 and not replayed]
            assert len(first) == 1, answers
            for status, _replayed, body in answers:
                assert (status, body["id"] if status == 201 else None) in {
                    (409, None),
                    (201, first[0]["id"]),
                }, answers
        async with session.get(url.format(two.base) + "?limit=100", headers=auth) as resp:
            texts = sorted(c["text"] for c in (await resp.json())["items"])
        assert texts == sorted(f"c{i}" for i in range(KEYS))

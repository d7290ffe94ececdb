"""A photo is `ready` without its original; the original job follows, durably.

Against the real app: PostgreSQL, the jobs table, the media workers, the
blob store. The render job marks the photo ready and enqueues the original
job in the same transaction; until that job has run, the photo's original
is its 'large' rendition.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from aiohttp.test_utils import TestClient
from PIL import Image

from picshare import keys
from picshare.app import create_app
from picshare.config import Settings
from picshare.photos import ORIGINAL_JOB, RENDER_JOB
from storage import jobs_repo
from tests import imaging
from tests.conftest import AiohttpClient, bearer, signup, upload, wait_ready
from tests.picshare.media.test_renditions import (
    CORNER_AT,
    assert_no_metadata,
    close_to,
    corner_colours,
)

Client = TestClient[Any, Any]


async def get_photo(client: Client, token: str, photo_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(token))
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def wait_original(client: Client, token: str, photo_id: str) -> dict[str, Any]:
    """Poll until the photo's original is no longer its 'large' rendition."""
    for _ in range(300):
        photo = await get_photo(client, token, photo_id)
        if photo["status"] == "ready" and photo["urls"]["original"] != photo["urls"]["large"]:
            return photo
        await asyncio.sleep(0.1)
    raise AssertionError(f"photo {photo_id} got no original in 30 s: {photo}")


async def media(client: Client, url: str) -> bytes:
    resp = await client.get(url)
    assert resp.status == 200
    return await resp.read()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def job_states(client: Client) -> list[tuple[str, str]]:
    """Every shard's jobs (each is in the jobs table of the shard it belongs with)."""
    jobs = []
    for db in client.app[keys.DATABASES].physical:
        async with db.primary.pool.acquire() as conn:
            jobs += await jobs_repo.list_jobs(conn, status=None, limit=100)
    return sorted((job.kind, job.status) for job in jobs)


async def test_ready_before_the_original_and_a_crash_between_loses_nothing(
    settings: Settings, media_pool: ProcessPoolExecutor, aiohttp_client: AiohttpClient
) -> None:
    # A server whose runner does not run: the test runs the render job itself.
    first: Client = await aiohttp_client(
        create_app(settings.replace(jobs={"enabled": False}), media_pool=media_pool)
    )
    token = await signup(first)
    data = imaging.jpeg_bytes(
        400, 200, orientation=1, gps=True, metadata=True, corner=imaging.CORNER
    )
    created = await (await upload(first, token, data)).json()
    photo_id = created["id"]
    render = first.app[keys.PHOTOS].job_kinds()[RENDER_JOB]
    await render.run({"photo_id": int(photo_id)})

    # Shown, with every display rendition, while the original job has not run.
    photo = await get_photo(first, token, photo_id)
    assert photo["status"] == "ready"
    assert photo["blurhash"]
    assert photo["urls"]["original"] == photo["urls"]["large"]
    stand_in = await media(first, photo["urls"]["original"])
    assert_no_metadata(stand_in)
    assert decoded(stand_in).size == (400, 200)
    assert (ORIGINAL_JOB, "queued") in await job_states(first)

    # The process dies holding the original job (leased, never finished).
    claimed = []
    for db in first.app[keys.DATABASES].physical:
        async with db.primary.pool.acquire() as conn:
            claimed += await jobs_repo.claim(conn, worker="dead", limit=10, lease_seconds=0.5)
    assert ORIGINAL_JOB in {job.kind for job in claimed}
    await first.close()

    # A new server takes the job over once the lease runs out, and makes it.
    second: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    photo = await wait_original(second, token, photo_id)
    original = await media(second, photo["urls"]["original"])
    assert_no_metadata(original)
    # Upright already: the upload's own coded pixels, not a re-encode.
    assert decoded(original).tobytes() == decoded(data).convert("RGB").tobytes()
    for _ in range(50):
        if all(status == "done" for _, status in await job_states(second)):
            break
        await asyncio.sleep(0.1)
    assert {status for _, status in await job_states(second)} == {"done"}


async def test_rotated_upload_gets_an_upright_original_without_exif(client: Client) -> None:
    token = await signup(client)
    data = imaging.jpeg_bytes(400, 200, orientation=6, gps=True, corner=imaging.CORNER)
    created = await (await upload(client, token, data)).json()
    ready = await wait_ready(client, token, created["id"])
    assert (ready["width"], ready["height"]) == (200, 400)
    photo = await wait_original(client, token, created["id"])
    original = await media(client, photo["urls"]["original"])
    assert_no_metadata(original)
    image = decoded(original)
    assert image.size == (200, 400)
    red = CORNER_AT[6](*image.size)
    for corner, colour in corner_colours(image).items():
        assert close_to(colour, imaging.CORNER if corner == red else imaging.COLOR)


async def test_original_job_of_a_deleted_photo_makes_nothing(
    settings: Settings, media_pool: ProcessPoolExecutor, aiohttp_client: AiohttpClient
) -> None:
    client: Client = await aiohttp_client(
        create_app(settings.replace(jobs={"enabled": False}), media_pool=media_pool)
    )
    token = await signup(client)
    created = await (await upload(client, token, imaging.jpeg_bytes(300, 200))).json()
    kinds = client.app[keys.PHOTOS].job_kinds()
    await kinds[RENDER_JOB].run({"photo_id": int(created["id"])})
    resp = await client.delete(f"/api/v1/photos/{created['id']}", headers=bearer(token))
    assert resp.status == 204
    blobs = client.app[keys.SETTINGS].data_path / "blobs"
    before = sorted(blobs.rglob("*"))
    await kinds[ORIGINAL_JOB].run({"photo_id": int(created["id"])})
    assert sorted(blobs.rglob("*")) == before

"""Uploads, renditions, serving and deletes with the blobs on S3 (moto's real
S3 server behind a relay the tests can cut: tests/s3_harness.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from aiohttp.test_utils import TestClient

import tests.imaging as imaging
from picshare import keys
from picshare.app import create_app
from tests.conftest import AiohttpClient, bearer, make_settings, signup, upload, wait_ready
from tests.handlers.test_api_photos import photo_count
from tests.s3_harness import S3Gate

Client = TestClient[Any, Any]
PART = 5 * 1024 * 1024


@pytest.fixture
async def gate(s3_endpoint: str) -> AsyncIterator[S3Gate]:
    target = urlsplit(s3_endpoint)
    assert target.hostname is not None
    assert target.port is not None
    relay = S3Gate(target.hostname, target.port)
    await relay.open()
    yield relay
    await relay.cut()


@pytest.fixture
async def s3_client(
    tmp_path: Path,
    database_url: str,
    s3_bucket: str,
    gate: S3Gate,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> Client:
    settings = make_settings(
        tmp_path / "data",
        database_url,
        blobs={"backend": "s3"},
        s3={
            "bucket": s3_bucket,
            "endpoint_url": gate.url,
            "part_size": PART,
            "connect_timeout": 1.0,
            "read_timeout": 5.0,
            "max_attempts": 1,
        },
        uploads={"max_bytes": 20 * 1024 * 1024},
    )
    app: web.Application = create_app(settings, media_pool=media_pool)
    result: Client = await aiohttp_client(app)
    return result


async def bucket_state(endpoint: str, bucket: str) -> tuple[list[str], list[str]]:
    """(open multipart uploads, objects), asked of S3 directly."""
    async with get_session().create_client("s3", endpoint_url=endpoint) as s3:
        uploads = await s3.list_multipart_uploads(Bucket=bucket)
        objects = await s3.list_objects_v2(Bucket=bucket)
    return (
        [u["Key"] for u in uploads.get("Uploads", [])],
        sorted(o["Key"] for o in objects.get("Contents", [])),
    )


async def wait_for(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_upload_renditions_range_and_delete_on_s3(
    s3_client: Client, s3_endpoint: str, s3_bucket: str
) -> None:
    token = await signup(s3_client)
    resp = await upload(s3_client, token, imaging.jpeg_bytes(900, 600, gps=True))
    assert resp.status == 201, await resp.text()
    photo = await wait_ready(s3_client, token, (await resp.json())["id"])
    _, objects = await bucket_state(s3_endpoint, s3_bucket)
    renditions = {photo["urls"][n].split("/media/")[1] for n in ("large", "medium", "thumb")}
    assert renditions <= set(objects)
    assert any(k.startswith("uploads/") for k in objects)  # the upload as received
    # Nothing on the local disk.
    local = s3_client.app[keys.SETTINGS].data_path / "blobs"
    assert not [p for p in local.rglob("*") if p.is_file()]

    url = photo["urls"]["medium"]
    whole = await s3_client.get(url)
    assert whole.status == 200
    body = await whole.read()
    etag = whole.headers["ETag"]
    part = await s3_client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(body)}"
    assert await part.read() == body[100:200]
    tail = await s3_client.get(url, headers={"Range": "bytes=-50"})
    assert await tail.read() == body[-50:]
    cached = await s3_client.get(url, headers={"If-None-Match": etag})
    assert cached.status == 304
    # The upload as received (with its EXIF) is not reachable.
    upload_key = next(k for k in objects if k.startswith("uploads/"))
    assert (await s3_client.get(f"/media/{upload_key}")).status == 404

    gone = await s3_client.delete(f"/api/v1/photos/{photo['id']}", headers=bearer(token))
    assert gone.status == 204

    async def empty() -> bool:
        return await bucket_state(s3_endpoint, s3_bucket) == ([], [])

    await wait_for(empty)


async def test_s3_cut_mid_upload_is_503_and_leaves_nothing(
    s3_client: Client, s3_endpoint: str, s3_bucket: str, gate: S3Gate
) -> None:
    token = await signup(s3_client)
    boundary = "picshare-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    first, rest = os.urandom(PART + 1024), os.urandom(1024 * 1024)

    async def first_part_sent() -> bool:
        uploads, _ = await bucket_state(s3_endpoint, s3_bucket)
        if not uploads:
            return False
        async with get_session().create_client("s3", endpoint_url=s3_endpoint) as s3:
            listed = await s3.list_multipart_uploads(Bucket=s3_bucket)
            one = listed["Uploads"][0]
            parts = await s3.list_parts(Bucket=s3_bucket, Key=one["Key"], UploadId=one["UploadId"])
        return bool(parts.get("Parts"))

    async def body() -> AsyncIterator[bytes]:
        yield head + first
        await wait_for(first_part_sent)
        await gate.cut()  # S3 unreachable from here on
        yield rest + f"\r\n--{boundary}--\r\n".encode()

    resp = await s3_client.post(
        "/api/v1/upload",
        data=body(),
        headers={
            **bearer(token),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"]
    assert resp.content_type == "application/problem+json"
    assert await photo_count(s3_client) == 0

    ready = await s3_client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["blobs"].startswith("failing")

    # S3 back: the aborted multipart upload is cleaned up (the janitor retries).
    await gate.open()

    async def clean() -> bool:
        return await bucket_state(s3_endpoint, s3_bucket) == ([], [])

    await wait_for(clean)
    assert (await s3_client.get("/readyz")).status == 200


async def test_public_urls_point_at_the_cdn(
    tmp_path: Path,
    database_url: str,
    s3_bucket: str,
    s3_endpoint: str,
    media_pool: ProcessPoolExecutor,
    aiohttp_client: AiohttpClient,
) -> None:
    settings = make_settings(
        tmp_path / "data",
        database_url,
        blobs={"backend": "s3"},
        s3={"bucket": s3_bucket, "endpoint_url": s3_endpoint},
        media={"cdn_url": "https://cdn.example/"},
    )
    client: Client = await aiohttp_client(create_app(settings, media_pool=media_pool))
    token = await signup(client)
    resp = await upload(client, token, imaging.jpeg_bytes(300, 200))
    photo = await wait_ready(client, token, (await resp.json())["id"])
    thumb = photo["urls"]["thumb"]
    assert thumb.startswith("https://cdn.example/r/")
    _, objects = await bucket_state(s3_endpoint, s3_bucket)
    assert thumb.removeprefix("https://cdn.example/") in objects
    # A private account's photo: PicShare's own signed URL, not the CDN's...
    await client.patch("/api/v1/me", json={"private": True}, headers=bearer(token))
    mine = await (await client.get(f"/api/v1/photos/{photo['id']}", headers=bearer(token))).json()
    signed = mine["urls"]["thumb"]
    assert signed.startswith("/media/r/")
    assert "sig=" in signed
    assert (await client.get(signed.split("?")[0], allow_redirects=False)).status == 404
    # ...which sends the browser to an expiring presigned S3 URL.
    moved = await client.get(signed, allow_redirects=False)
    assert moved.status == 302
    direct = moved.headers["Location"]
    assert direct.startswith(s3_endpoint)
    assert "X-Amz-Signature=" in direct
    assert "X-Amz-Expires=" in direct
    async with aiohttp.ClientSession() as browser, browser.get(direct) as got:
        assert got.status == 200
        assert (await got.read())[:2] == b"\xff\xd8"  # a JPEG
    # (moto does not check signatures, so a forged one cannot be refused here.)

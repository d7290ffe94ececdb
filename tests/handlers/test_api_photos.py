"""Uploads and photos over the REST API, against real PostgreSQL and the real image pipeline."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

import tests.imaging as imaging
from picshare import keys
from tests.conftest import bearer, signup, upload, upload_ready, wait_ready
from tests.picshare.media.test_photo_jobs import wait_original
from tests.sharded import jobs_settled

Client = TestClient[Any, Any]


def blob_files(client: Client) -> list[Path]:
    root = client.app[keys.SETTINGS].data_path / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and ".spool" not in p.parts]


def spool_files(client: Client) -> list[Path]:
    return list((client.app[keys.SETTINGS].data_path / "blobs" / ".spool").glob("*"))


async def photo_count(client: Client) -> int:
    """Photos on every shard."""
    total = 0
    for db in client.app[keys.DATABASES].physical:
        total += int(await db.primary.pool.fetchval("SELECT count(*) FROM photos"))
    return total


@pytest.mark.parametrize(
    ("maker", "filename"),
    [
        (lambda: imaging.jpeg_bytes(800, 600), "a.jpg"),
        (lambda: imaging.png_bytes(300, 200), "b.png"),
        (lambda: imaging.webp_bytes(300, 200), "c.webp"),
        (lambda: imaging.heic_bytes(300, 200), "d.heic"),
    ],
)
async def test_each_accepted_format_becomes_ready(
    client: Client, maker: Any, filename: str
) -> None:
    token = await signup(client)
    resp = await upload(client, token, maker(), filename=filename, caption="Hi #Sunset")
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["status"] == "processing"
    assert created["tags"] == ["sunset"]
    photo = await wait_ready(client, token, created["id"])
    assert photo["status"] == "ready"
    assert photo["blurhash"]
    for name in ("original", "large", "medium", "thumb"):
        media = await client.get(photo["urls"][name])
        assert media.status == 200
        assert media.content_type == "image/jpeg"
    thumb = Image.open(io.BytesIO(await (await client.get(photo["urls"]["thumb"])).read()))
    assert thumb.size == (150, 150)


async def test_gps_is_gone_and_orientation_applied(client: Client) -> None:
    token = await signup(client)
    data = imaging.jpeg_bytes(400, 200, orientation=6, gps=True)
    resp = await upload(client, token, data)
    photo = await wait_ready(client, token, (await resp.json())["id"])
    assert (photo["width"], photo["height"]) == (200, 400)
    for name in ("original", "large", "medium", "thumb"):
        raw = await (await client.get(photo["urls"][name])).read()
        assert b"Exif" not in raw[:4096]
        image = Image.open(io.BytesIO(raw))
        assert not image.getexif()
        assert "exif" not in image.info
    large = Image.open(io.BytesIO(await (await client.get(photo["urls"]["large"])).read()))
    assert large.size == (200, 400)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (imaging.text_bytes(), 415),
        (imaging.truncated_jpeg_bytes(), 422),
        (imaging.bomb_png_bytes(), 422),
    ],
)
async def test_bad_files_are_refused_and_leave_nothing(
    client: Client, data: bytes, status: int
) -> None:
    token = await signup(client)
    resp = await upload(client, token, data, filename="evil.jpg")
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["errors"][0]["field"] == "file"
    assert await photo_count(client) == 0
    assert blob_files(client) == []
    assert spool_files(client) == []


async def test_oversize_upload_is_413_and_leaves_nothing(
    settings: Any, media_pool: Any, aiohttp_client: Any
) -> None:
    from picshare.app import create_app

    small = settings.replace(uploads={"max_bytes": 100_000})
    client = await aiohttp_client(create_app(small, media_pool=media_pool))
    token = await signup(client)
    resp = await upload(client, token, imaging.noise_jpeg_bytes(1200, 1200))
    assert resp.status == 413
    assert (await resp.json())["errors"][0]["field"] == "file"
    assert await photo_count(client) == 0
    assert blob_files(client) == []
    assert spool_files(client) == []


async def test_upload_needs_auth_and_a_file(client: Client) -> None:
    resp = await client.post("/api/v1/upload", data={"caption": "x"})
    assert resp.status == 401
    token = await signup(client)
    resp = await client.post("/api/v1/upload", data={"caption": "x"}, headers=bearer(token))
    assert resp.status in (400, 415)
    assert (await resp.json())["errors"][0]["field"] in {"file", "body"}
    resp = await upload(client, token, imaging.jpeg_bytes(50, 50), caption="x" * 2201)
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["field"] == "caption"
    assert await photo_count(client) == 0


async def test_photos_alias_route_uploads_too(client: Client) -> None:
    token = await signup(client)
    resp = await upload(client, token, imaging.jpeg_bytes(64, 64), path="/api/v1/photos")
    assert resp.status == 201


async def test_delete_owner_only_and_blobs_go(client: Client) -> None:
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    resp = await upload(client, alice, imaging.jpeg_bytes(300, 300))
    photo = await wait_original(client, alice, (await resp.json())["id"])
    # The upload and each distinct rendition (for a small image, large and
    # medium are the same bytes, so the same content-addressed file).
    assert len(blob_files(client)) == 1 + len(set(photo["urls"].values()))
    assert (await client.delete(f"/api/v1/photo/{photo['id']}", headers=bearer(bob))).status == 403
    assert (await client.delete(f"/api/v1/photo/{photo['id']}")).status == 401
    assert (await client.delete("/api/v1/photo/123", headers=bearer(alice))).status == 404
    assert (await client.delete("/api/v1/photo/abc", headers=bearer(alice))).status == 404
    resp = await client.delete(f"/api/v1/photos/{photo['id']}", headers=bearer(alice))
    assert resp.status == 204
    assert (await client.get(f"/api/v1/photos/{photo['id']}")).status == 404
    for _ in range(100):
        if not blob_files(client):
            break
        await asyncio.sleep(0.1)
    assert blob_files(client) == []


async def test_same_bytes_twice_then_delete_one_keeps_the_other(client: Client) -> None:
    token = await signup(client)
    data = imaging.jpeg_bytes(120, 90)
    first = await upload_ready(client, token, data)
    second = await upload_ready(client, token, data)
    await client.delete(f"/api/v1/photos/{first['id']}", headers=bearer(token))
    # The delete's jobs (the blobs' collection among them) have run, not
    # merely had a second to.
    await jobs_settled(client.app)
    for name in ("original", "large", "medium", "thumb"):
        assert (await client.get(second["urls"][name])).status == 200


async def test_media_caching_headers_304_and_range(client: Client) -> None:
    token = await signup(client)
    photo = await wait_ready(
        client,
        token,
        (await (await upload(client, token, imaging.jpeg_bytes(200, 200))).json())["id"],
    )
    url = photo["urls"]["large"]
    resp = await client.get(url)
    body = await resp.read()
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = resp.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status == 304
    part = await client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert await part.read() == body[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(body)}"
    tail = await client.get(url, headers={"Range": "bytes=-5"})
    assert await tail.read() == body[-5:]
    bad = await client.get(url, headers={"Range": f"bytes={len(body) + 10}-"})
    assert bad.status == 416
    assert (await client.get("/media/r/" + "0" * 64 + ".jpg")).status == 404
    # Uploads (with their metadata) are never served.
    assert (await client.get("/media/uploads/" + "0" * 64)).status == 404


async def test_processing_photo_is_visible_to_owner_only(client: Client) -> None:
    token = await signup(client, "owner")
    other = await signup(client, "other")
    resp = await upload(client, token, imaging.jpeg_bytes(100, 100))
    photo_id = (await resp.json())["id"]
    shard = client.app[keys.DATABASES].of_id(int(photo_id))
    async with shard.primary.pool.acquire() as conn:
        await conn.execute("UPDATE photos SET status = 'processing' WHERE id = $1", int(photo_id))
    assert (await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(other))).status == 404
    assert (await client.get(f"/api/v1/photos/{photo_id}", headers=bearer(token))).status == 200


async def test_user_photos_and_unknown_user(client: Client) -> None:
    token = await signup(client, "gina")
    await wait_ready(
        client,
        token,
        (await (await upload(client, token, imaging.jpeg_bytes(80, 80))).json())["id"],
    )
    resp = await client.get("/api/v1/users/gina/photos")
    assert resp.status == 200
    assert len((await resp.json())["items"]) == 1
    assert (await client.get("/api/v1/users/nobody/photos")).status == 404
    resp = await client.get("/api/v1/photos?user=gina")
    assert len((await resp.json())["items"]) == 1


async def test_bad_pagination_params_are_400(client: Client) -> None:
    for query, field in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=djE6eA", "cursor"),
    ):
        resp = await client.get(f"/api/v1/photos?{query}")
        assert resp.status == 400, query
        assert (await resp.json())["errors"][0]["field"] == field

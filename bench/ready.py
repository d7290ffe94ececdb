"""Upload to `ready`, the way a user feels it, against a full decode of the same file.

A real `run.py serve` process gets a 12 MP and a 24 MP camera-like JPEG over
HTTP. The clock starts when the upload's 201 has arrived and stops at the
first `GET /api/v1/photos/{id}` (polled every few milliseconds) that says
`ready`: the spinner a user watches after an upload. Pillow's full decode of
the same file (`Image.open().load()`) is timed in the same run as the yard
stick: target ready <= 1.5 x decode. The time until the metadata-free
original follows (`urls.original` no longer the `large` rendition) is shown too.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench._common import (
    PHOTO_SIZES,
    QUICK_PHOTO_SIZES,
    Options,
    Row,
    photo_like,
    picshare_server,
    say,
    signup,
    wait_quiet,
)

TARGET = 1.5
POLL = 0.005  # seconds between two polls of the photo


def _camera_jpeg(size: tuple[int, int], seed: int, path: Path) -> Path:
    """A photo-like JPEG with the EXIF block a phone writes (camera, orientation 1, GPS)."""
    exif = Image.Exif()
    exif[0x010F] = "PicShare Bench Camera"  # Make
    exif[0x0110] = "Model 1"  # Model
    exif[0x0112] = 1  # Orientation
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 12.34), 3: "E", 4: (4.0, 53.0, 43.21)})
    photo_like(size, seed).save(path, format="JPEG", quality=90, exif=exif.tobytes())
    return path


def _full_decode(path: str) -> None:
    with Image.open(path) as image:
        image.load()


async def _upload(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], path: Path
) -> tuple[str, float]:
    """The new photo's id, and the perf_counter time its 201 had fully arrived."""
    with path.open("rb") as fh:
        form = aiohttp.FormData()
        form.add_field("caption", "bench")
        form.add_field("file", fh, filename=path.name, content_type="image/jpeg")
        async with session.post(f"{base}/api/v1/upload", data=form, headers=headers) as resp:
            body = await resp.json()
            answered = time.perf_counter()
    if resp.status != 201:
        raise RuntimeError(f"upload answered {resp.status}: {body}")
    return str(body["id"]), answered


async def _poll_until(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    done: Any,
    timeout: float = 60.0,
) -> tuple[float, dict[str, Any]]:
    deadline = time.perf_counter() + timeout
    while True:
        async with session.get(url, headers=headers) as resp:
            body: dict[str, Any] = await resp.json()
        now = time.perf_counter()
        if done(body):
            return now, body
        if body.get("status") not in ("processing", "ready"):
            raise RuntimeError(f"photo became {body.get('status')}: {body}")
        if now > deadline:
            raise RuntimeError(f"not done after {timeout:.0f} s: {body}")
        await asyncio.sleep(POLL)


def _is_ready(body: dict[str, Any]) -> bool:
    return body.get("status") == "ready"


def _has_original(body: dict[str, Any]) -> bool:
    urls = body.get("urls") or {}
    return _is_ready(body) and urls.get("original") not in (None, urls.get("large"))


def _decode_seconds(path: Path) -> float:
    start = time.perf_counter()
    _full_decode(str(path))
    return time.perf_counter() - start


async def _ready_times(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], path: Path, runs: int
) -> tuple[list[float], list[float], list[float]]:
    """Per run: a full decode of the file, then its upload's 201 to `ready` and to its original.

    The decode is timed in every run, just before the upload, so that both
    see the same machine: on a shared machine the load changes from one
    minute to the next, and a ratio of figures taken apart would show that.
    """
    decode: list[float] = []
    ready: list[float] = []
    original: list[float] = []
    _full_decode(str(path))  # the file into the page cache
    for _ in range(runs):
        decode.append(await asyncio.to_thread(_decode_seconds, path))
        photo_id, answered = await _upload(session, base, headers, path)
        url = f"{base}/api/v1/photos/{photo_id}"
        at, _body = await _poll_until(session, url, headers, _is_ready)
        ready.append(at - answered)
        at, _body = await _poll_until(session, url, headers, _has_original)
        original.append(at - answered)
        # Let the notify and original jobs settle before the next upload.
        await asyncio.sleep(0.2)
    return decode, ready, original


async def run(opts: Options) -> list[Row]:
    runs = 3 if opts.quick else 7
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        files = [
            _camera_jpeg(size, seed, Path(tmp) / f"{size[0]}x{size[1]}.jpg")
            for seed, size in enumerate(QUICK_PHOTO_SIZES if opts.quick else PHOTO_SIZES)
        ]
        warmup = _camera_jpeg((1024, 768), 9, Path(tmp) / "warmup.jpg")
        server, base = picshare_server(Path(tmp) / "data")
        timeout = aiohttp.ClientTimeout(total=120)
        async with server, aiohttp.ClientSession(timeout=timeout) as session:
            headers = {"Authorization": f"Bearer {await signup(session, base)}"}
            # One upload first, as every later user of a running server finds it.
            await _ready_times(session, base, headers, warmup, 1)
            for path in files:
                with Image.open(path) as image:
                    width, height = image.size
                mp = width * height / 1e6
                label = f"{mp:.0f} MP"
                await wait_quiet()
                decodes, ready, original = await _ready_times(session, base, headers, path, runs)
                decode = statistics.median(decodes)
                ready_s = statistics.median(ready)
                original_s = statistics.median(original)
                ratio = ready_s / decode
                verdict = "ok" if ratio <= TARGET else f"OVER target {TARGET}"
                if mp < 12:
                    # --quick: too small for a reduced decode; a smoke run only.
                    verdict = "(the target is for 12 MP and more)"
                say(
                    f"  {label} {width}x{height} JPEG ({path.stat().st_size / 1e6:.1f} MB):"
                    f" ready {ready_s * 1000:.0f} ms after the 201"
                    f" (min {min(ready) * 1000:.0f}, max {max(ready) * 1000:.0f}),"
                    f" full decode {decode * 1000:.0f} ms, ratio {ratio:.2f} ({verdict});"
                    f" original after {original_s * 1000:.0f} ms  [medians of {runs},"
                    " each upload after its own decode]"
                )
                rows += [
                    (f"{label} full decode (Image.open+load)", f"{decode * 1000:.0f} ms"),
                    (f"{label} upload 201 -> ready", f"{ready_s * 1000:.0f} ms"),
                    (f"{label} ready / decode (target <= {TARGET})", f"{ratio:.2f} {verdict}"),
                    (f"{label} upload 201 -> original made", f"{original_s * 1000:.0f} ms"),
                ]
    return rows

"""Upload memory: a ~200 MB image streamed to the real server must not be held in its memory.

Once into the local store, once into S3 (moto's S3 server, started here as
in the tests: multipart upload, parts of s3.part_size, s3.parts_in_flight at
once). The server process's resident set is sampled every 10 ms while the
upload runs; its peak growth over the value just before the upload should
stay well under the file size (target < 64 MiB). Decoding (the probe) runs
in the media worker processes, so only the server's own pid is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiobotocore.session import get_session
from PIL import Image

from bench._common import Options, Row, photo_like, picshare_server, save_jpeg, say, signup
from tests.s3_harness import moto_s3, new_bucket_name

MIB = 1024 * 1024
TARGET_MIB = 64
SIDE = 8200  # 8200 x 8200 RGB = 192 MiB of pixels, under the default 89.5 MP limit
QUICK_SIDE = 2600  # ~19 MiB


class RssSampler:
    """Peak VmRSS of one pid, sampled from a thread while the event loop drives the upload."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def status_kib(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/{self.pid}/status")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.status_kib("VmRSS"))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.status_kib("VmRSS"))


def _noise_png(path: Path, side: int) -> Path:
    """Random RGB pixels stored uncompressed: as big as the pixels, and a valid PNG."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    image.save(path, format="PNG", compress_level=0)
    return path


async def _upload(session: aiohttp.ClientSession, base: str, token: str, path: Path) -> float:
    """Seconds to POST ``path`` and get the 201; the body is read from disk as it is sent."""
    with path.open("rb") as fh:
        form = aiohttp.FormData()
        form.add_field("caption", "bench upload")
        form.add_field("tags", "bench")
        # A file object: aiohttp streams it in chunks instead of building the body.
        form.add_field("file", fh, filename=path.name, content_type="image/png")
        start = time.perf_counter()
        async with session.post(
            f"{base}/api/v1/upload", data=form, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            body = await resp.text()
            elapsed = time.perf_counter() - start
    if resp.status != 201:
        raise RuntimeError(f"upload of {path.name} answered {resp.status}: {body[:500]}")
    return elapsed


async def run(opts: Options) -> list[Row]:
    side = QUICK_SIDE if opts.quick else SIDE
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="picshare-bench-") as tmp:
        big = _noise_png(Path(tmp) / f"noise-{side}.png", side)
        warmup = save_jpeg(photo_like((1024, 768), 7), Path(tmp) / "warmup.jpg")
        for store in ("local", "s3"):
            (Path(tmp) / store).mkdir()
            with _store_env(store) as env:
                await _create_bucket(env)
                rows += await _measure(store, Path(tmp) / store, big, warmup, side, env)
    return rows


@contextlib.contextmanager
def _store_env(store: str) -> Iterator[dict[str, str]]:
    if store == "local":
        yield {}
        return
    with moto_s3() as endpoint:
        yield {
            "PICSHARE_BLOBS_BACKEND": "s3",
            "PICSHARE_S3_ENDPOINT_URL": endpoint,
            "PICSHARE_S3_BUCKET": new_bucket_name(),
        }


async def _create_bucket(env: dict[str, str]) -> None:
    if "PICSHARE_S3_BUCKET" in env:
        session = get_session()
        async with session.create_client("s3", endpoint_url=env["PICSHARE_S3_ENDPOINT_URL"]) as s3:
            await s3.create_bucket(Bucket=env["PICSHARE_S3_BUCKET"])


async def _measure(
    store: str, folder: Path, big: Path, warmup: Path, side: int, store_env: dict[str, str]
) -> list[Row]:
    size_mib = (await asyncio.to_thread(big.stat)).st_size / MIB
    env = {
        "PICSHARE_UPLOADS_MAX_BYTES": str(256 * MIB),
        "PICSHARE_UPLOADS_MAX_PIXELS": str(max(89_478_485, side * side)),
        # No render job: rendering a 67 MP upload would start right after
        # the 201, outside the measured window, and only slow the shutdown.
        "PICSHARE_JOBS_ENABLED": "false",
        **store_env,
    }
    server, base = picshare_server(folder / "data", env=env)
    timeout = aiohttp.ClientTimeout(total=600)
    async with server, aiohttp.ClientSession(timeout=timeout) as session:
        token = await signup(session, base)
        # A small upload first: lazily created thread pools, imports and the
        # media workers belong to the baseline, not to the big upload.
        await _upload(session, base, token, warmup)
        sampler = RssSampler(server.pid)
        baseline_kib = sampler.status_kib("VmRSS")
        hwm_before_kib = sampler.status_kib("VmHWM")
        with sampler:
            seconds = await _upload(session, base, token, big)
        # VmHWM catches a peak that fell between two samples, if it is a
        # new high for the process.
        hwm_after_kib = sampler.status_kib("VmHWM")
        peak_kib = sampler.peak_kib
        if hwm_after_kib > hwm_before_kib:
            peak_kib = max(peak_kib, hwm_after_kib)
    growth_mib = (peak_kib - baseline_kib) / 1024
    verdict = "ok" if growth_mib < TARGET_MIB else f"OVER target {TARGET_MIB}"
    say(
        f"  {store}: uploaded {size_mib:.1f} MiB ({side}x{side} PNG) in {seconds:.2f} s,"
        f" {size_mib / seconds:.1f} MiB/s; server RSS {baseline_kib / 1024:.1f} MiB before,"
        f" peak growth {growth_mib:.1f} MiB ({verdict}; {sampler.samples} samples)"
    )
    return [
        (f"{store}: uploaded (PNG, streamed from disk)", f"{size_mib:.1f} MiB ({side}x{side})"),
        (f"{store}: upload time (to the 201, incl. probe)", f"{seconds:.2f} s"),
        (f"{store}: upload throughput", f"{size_mib / seconds:.1f} MiB/s"),
        (f"{store}: server RSS before upload", f"{baseline_kib / 1024:.1f} MiB"),
        (
            f"{store}: server peak RSS growth (target < {TARGET_MIB})",
            f"{growth_mib:.1f} MiB {verdict}",
        ),
    ]

"""create_media_pool: the work really runs in other processes, and errors come back intact."""

from __future__ import annotations

import concurrent.futures
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from picshare.media import (
    MediaError,
    ProbeResult,
    RenditionSpec,
    create_media_pool,
    probe_image,
    render_renditions,
)
from picshare.media.pool import init_worker
from tests import imaging

MAX_PIXELS = 89_478_485


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    executor = create_media_pool(1)
    try:
        yield executor
    finally:
        executor.shutdown(cancel_futures=True)


def write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_tasks_run_in_another_process(pool: ProcessPoolExecutor) -> None:
    assert pool.submit(os.getpid).result(timeout=60) != os.getpid()


def test_workers_ignore_ctrl_c(pool: ProcessPoolExecutor) -> None:
    # The parent owns shutdown; a worker must not die mid-task on SIGINT.
    handler = pool.submit(signal.getsignal, signal.SIGINT).result(timeout=60)
    assert handler == signal.SIG_IGN


def test_probe_in_the_pool(pool: ProcessPoolExecutor, tmp_path: Path) -> None:
    # HEIC needs pillow_heif's opener, registered by the worker initializer.
    path = write(tmp_path, imaging.heic_bytes(64, 48))
    result = pool.submit(probe_image, path, MAX_PIXELS).result(timeout=60)
    assert result == ProbeResult(format="heic", mime="image/heic", width=64, height=48)


def test_render_in_the_pool(pool: ProcessPoolExecutor, tmp_path: Path) -> None:
    path = write(tmp_path, imaging.jpeg_bytes(400, 200, orientation=6, gps=True))
    result = pool.submit(render_renditions, path, RenditionSpec()).result(timeout=60)
    assert (result.width, result.height) == (200, 400)
    assert set(result.renditions) == {"original", "large", "medium", "thumb"}
    assert result.renditions == render_renditions(path, RenditionSpec()).renditions
    assert len(result.blurhash) == 28


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (imaging.text_bytes(), "unsupported"),
        (imaging.truncated_jpeg_bytes(), "corrupt"),
        (imaging.bomb_png_bytes(), "too_many_pixels"),
    ],
)
def test_media_error_crosses_the_process_boundary(
    pool: ProcessPoolExecutor, tmp_path: Path, data: bytes, kind: str
) -> None:
    path = write(tmp_path, data, "evil.jpg")
    for task in (
        pool.submit(probe_image, path, MAX_PIXELS),
        pool.submit(render_renditions, path, RenditionSpec()),
    ):
        with pytest.raises(MediaError) as info:
            task.result(timeout=60)
        assert info.value.kind == kind
        assert info.value.message


def test_pool_survives_a_bad_file(pool: ProcessPoolExecutor, tmp_path: Path) -> None:
    bad = write(tmp_path, imaging.truncated_jpeg_bytes(), "bad.jpg")
    good = write(tmp_path, imaging.png_bytes(30, 20), "good.png")
    with pytest.raises(MediaError):
        pool.submit(probe_image, bad, MAX_PIXELS).result(timeout=60)
    assert pool.submit(probe_image, good, MAX_PIXELS).result(timeout=60).width == 30


def test_zero_workers_means_one_per_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", lambda **kw: made.update(kw))
    create_media_pool(0)
    assert made["max_workers"] == (os.cpu_count() or 1)
    # Never 'fork': the parent has an event loop and threads.
    assert made["mp_context"].get_start_method() == "forkserver"
    assert made["initializer"] is init_worker


def test_negative_workers_is_an_error() -> None:
    with pytest.raises(ValueError, match="workers"):
        create_media_pool(-1)


def test_renditions_from_the_pool_are_plain_jpegs(
    pool: ProcessPoolExecutor, tmp_path: Path
) -> None:
    path = write(tmp_path, imaging.webp_bytes(64, 48))
    result = pool.submit(render_renditions, path, RenditionSpec()).result(timeout=60)
    for data in result.renditions.values():
        assert imaging.jpeg_metadata(data) == []
        with Image.open(write(tmp_path, data, "out.jpg")) as image:
            assert image.format == "JPEG"


async def test_media_workers_replace_a_broken_pool() -> None:
    import os

    import pytest

    from picshare.media import MediaWorkers, WorkersRestarted

    workers = MediaWorkers(workers=1)
    try:
        with pytest.raises(WorkersRestarted):
            await workers.run(os._exit, 1)  # a worker dies, as on a decoder crash
        assert workers.restarts == 1
        assert await workers.run(os.getpid) != os.getpid()  # the new pool works
    finally:
        await workers.close()


async def test_media_workers_start_warm() -> None:
    import asyncio

    import psutil

    from picshare.media import MediaWorkers

    def processes() -> set[int]:
        return {child.pid for child in psutil.Process().children(recursive=True)}

    before = processes()
    workers = MediaWorkers(workers=2)
    try:
        # Both processes start before any upload asks for one.
        for _ in range(100):
            started = processes() - before
            if len(started) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(started) >= 2
        pids = await asyncio.gather(*(workers.run(os.getpid) for _ in range(4)))
        assert set(pids) <= started
        assert len(set(pids)) >= 1
    finally:
        await workers.close()

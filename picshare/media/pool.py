"""The process pool that runs probe_image and render_renditions off the event loop.

Decoding is CPU-bound and runs in C code that may hold the GIL or crash on
hostile input, so it lives in separate processes. They are started with
'forkserver': the parent runs an asyncio loop and threads, and forking such a
process (the 'fork' default on Linux) can copy held locks into the child.
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
import os
import signal
import time

from PIL import Image, ImageFile

from picshare.media.probe import ensure_plugins

__all__ = ["create_media_pool", "init_worker", "warm_up", "worker_count"]

# How long a warm-up task holds its worker: long enough that the pool hands
# the next warm-up to a new process instead of this idle one.
_WARM_HOLD = 0.2


def init_worker() -> None:
    """Runs once in every worker process before its first task."""
    # Ctrl-C goes to the whole process group; the parent decides how to shut
    # the pool down, so workers must not die mid-task with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ensure_plugins()
    # probe/renditions set these per call too; set them here so nothing in a
    # worker ever decodes a truncated file leniently.
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def warm_up() -> None:
    """A new worker's first task, so that no upload waits for what it does.

    The pool starts its processes on demand: the first upload after a start
    (or a restart) would pay for the process, the imports of Pillow and its
    plugins, and the first touch of libjpeg's code and tables.
    """
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(out, format="JPEG")
    with Image.open(out) as image:
        image.draft("YCbCr", (32, 24))
        image.load()
    time.sleep(_WARM_HOLD)


def worker_count(workers: int) -> int:
    """How many processes the pool for a ``workers`` setting has (0 means one per CPU)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, not {workers}")
    return workers or os.cpu_count() or 1


def create_media_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` processes (0 means one per CPU)."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=worker_count(workers),
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=init_worker,
    )

"""The process pool that runs probe_image and render_renditions off the event loop.

Decoding is CPU-bound and runs in C code that may hold the GIL or crash on
hostile input, so it lives in separate processes. They are started with
'forkserver': the parent runs an asyncio loop and threads, and forking such a
process (the 'fork' default on Linux) can copy held locks into the child.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal

from PIL import ImageFile

from picshare.media.probe import ensure_plugins

__all__ = ["create_media_pool", "init_worker"]


def init_worker() -> None:
    """Runs once in every worker process before its first task."""
    # Ctrl-C goes to the whole process group; the parent decides how to shut
    # the pool down, so workers must not die mid-task with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ensure_plugins()
    # probe/renditions set these per call too; set them here so nothing in a
    # worker ever decodes a truncated file leniently.
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def create_media_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` processes (0 means one per CPU)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, not {workers}")
    count = workers or os.cpu_count() or 1
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=init_worker,
    )

"""The process pool that runs probe_image and render_renditions off the event loop.

Decoding is CPU-bound and runs in C code that may hold the GIL or crash on
hostile input, so it lives in separate processes. They are started with
'forkserver': the parent runs an asyncio loop and threads, and forking such a
process (the 'fork' default on Linux) can copy held locks into the child.

Workers must not outlive the server: a server killed with SIGKILL cannot shut
its pool down, and its idle workers would wait for work forever (they hold
the task queue's write end themselves, so it never reads end-of-file, and
they keep the forkserver alive in turn). Each worker therefore watches both
its parents (see `_die_with_parents`).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import io
import multiprocessing
import multiprocessing.process
import os
import signal
import sys
import threading
import time

from PIL import Image, ImageFile

from picshare.media.probe import ensure_plugins

__all__ = ["create_media_pool", "init_worker", "warm_up", "worker_count"]

# How long a warm-up task holds its worker: long enough that the pool hands
# the next warm-up to a new process instead of this idle one.
_WARM_HOLD = 0.2

# <linux/prctl.h>: deliver a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def init_worker() -> None:
    """Runs once in every worker process before its first task."""
    _die_with_parents()
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


def _die_with_parents() -> None:
    """End this worker when the forkserver or the server that started it dies.

    The OS parent of a worker is the forkserver: the kernel kills the worker
    when it goes (PR_SET_PDEATHSIG; the forkserver is single-threaded, so the
    signal cannot fire early because a forking thread ended). The server is
    only the logical parent, so the kernel does not help there: a daemon
    thread waits on the server's sentinel, a pipe whose write end only the
    server holds, and which therefore reads end-of-file the moment the server
    dies, however it dies. The forkserver and the resource tracker exit by
    themselves once no server or worker holds their pipes.
    """
    forkserver = os.getppid()
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != forkserver:
        # The forkserver died between fork and prctl: the signal will never come.
        os._exit(1)
    server = multiprocessing.parent_process()
    if server is not None:
        threading.Thread(
            target=_exit_when_gone, args=(server,), name="server-watch", daemon=True
        ).start()


def _set_parent_death_signal(sig: signal.Signals) -> None:
    if not sys.platform.startswith("linux"):
        return  # the server watch below still applies
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")


def _exit_when_gone(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns once the parent's sentinel reads end-of-file
    # No cleanup: the task in hand has nobody to return to.
    os._exit(1)

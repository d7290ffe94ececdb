"""The media process pool as the services use it: replaced when it breaks.

A worker that dies (a decoder crash on hostile input, the OOM killer) leaves
a `ProcessPoolExecutor` broken for good, so every later upload would fail
until a restart. `MediaWorkers` swaps in a fresh pool the first time a call
sees it broken; that call fails with `WorkersRestarted` (a 503, or a job
retry), the next ones succeed. Every pool it makes is warmed at once (all
its processes started and their codecs loaded) rather than by the first
uploads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from picshare.media.pool import create_media_pool, warm_up, worker_count

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkersRestarted(RuntimeError):
    """The pool broke under this call and was replaced; retrying may work."""


class MediaWorkers:
    __slots__ = ("_factory", "_owned", "_pool", "restarts")

    def __init__(
        self, pool: Executor | None = None, *, workers: int = 0, owned: bool = True
    ) -> None:
        self._factory: Callable[[], Executor] = lambda: _warmed(create_media_pool(workers), workers)
        self._pool = pool if pool is not None else self._factory()
        self._owned = owned
        self.restarts = 0

    def __repr__(self) -> str:
        return f"<MediaWorkers restarts={self.restarts}>"

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            if pool is self._pool:  # the first call to notice replaces it
                log.error("a media worker died; starting a new pool")
                self._pool = self._factory()
                self._owned = True
                self.restarts += 1
                await asyncio.to_thread(pool.shutdown, wait=False, cancel_futures=True)
            raise WorkersRestarted("the image workers were restarted; try again") from None

    async def close(self) -> None:
        if self._owned:
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


def _warmed(pool: Executor, workers: int) -> Executor:
    # Submitted side by side, each warm-up starts a process of its own.
    for _ in range(worker_count(workers)):
        pool.submit(warm_up).add_done_callback(_log_failure)
    return pool


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        # Not fatal: a broken pool is noticed, and replaced, by the next call.
        log.warning("warming a media worker failed: %r", future.exception())

"""Single flight: concurrent calls for one key share one run of the work.

The first caller runs the work in its own task (no task is spawned); the
others await its result. If the work raises, they all get the exception. If
the runner is cancelled (its client hung up), the waiters are not: one of
them runs the work again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

R = TypeVar("R")


class _Abandoned(Exception):
    """The runner was cancelled before finishing; a waiter takes over."""


class SingleFlight(Generic[R]):
    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[R]] = {}

    def __repr__(self) -> str:
        return f"<SingleFlight in_flight={len(self._calls)}>"

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self, key: str, work: Callable[[], Awaitable[R]]) -> R:
        while (call := self._calls.get(key)) is not None:
            try:
                # shield: a waiter that is cancelled must not cancel the others' result.
                return await asyncio.shield(call)
            except _Abandoned:
                continue
        call = asyncio.get_running_loop().create_future()
        self._calls[key] = call
        try:
            result = await work()
        except BaseException as exc:
            self._finish(key, call)
            call.set_exception(exc if isinstance(exc, Exception) else _Abandoned())
            call.exception()  # mark it retrieved: nobody may be waiting
            raise
        self._finish(key, call)
        call.set_result(result)
        return result

    def forget(self, key: str) -> None:
        """Later callers start a new run instead of joining the current one."""
        self._calls.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """`forget` every key starting with `prefix` (a scan of the runs in flight)."""
        for key in [k for k in self._calls if k.startswith(prefix)]:
            del self._calls[key]

    def _finish(self, key: str, call: asyncio.Future[R]) -> None:
        if self._calls.get(key) is call:
            del self._calls[key]

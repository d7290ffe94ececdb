"""The process's heartbeat in the site's registry (picshare/system.py)."""

from __future__ import annotations

import asyncio

from picshare.metrics import Metrics
from picshare.process_registry import ProcessInfo
from picshare.process_registry_local import LocalRegistry
from picshare.system import SystemService


class LosesCancels(LocalRegistry):
    """A registry whose write swallows a cancellation that arrives during it,
    as a Redis command completing at that moment can on Python 3.11."""

    __slots__ = ("beats",)

    def __init__(self) -> None:
        super().__init__()
        self.beats = 0

    async def beat(self, info: ProcessInfo) -> None:
        self.beats += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await super().beat(info)


async def test_the_heartbeat_stops_and_leaves_even_when_a_cancel_would_be_lost() -> None:
    registry = LosesCancels()
    system = SystemService(
        registry=registry,
        health=None,
        hub=None,
        metrics=Metrics(),
        kind="web",
        listen="127.0.0.1:0",
        consumers="all",
    )
    beating = asyncio.create_task(system.heartbeat())
    await asyncio.sleep(0.01)  # inside its first write
    assert registry.beats == 1
    system.stop()
    async with asyncio.timeout(2):  # the app's clean-up waited for ever before
        await beating
    assert await registry.processes() == []  # it left

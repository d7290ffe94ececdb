"""`Subscription.notifications`: a subscription is one more socket of its user
in this process's hub (picshare/live.py), fed by the same event bus as `/ws`,
so a notification written by any process reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from picshare import keys
from picshare.live import offer_to


class QueuedSocket:
    """A hub socket whose events wait in a bounded queue for the subscription
    to take them; full, it is a slow consumer and the hub closes it."""

    __slots__ = ("_queue", "closed", "user_id")

    def __init__(self, user_id: int, *, limit: int) -> None:
        self.user_id = user_id
        self.closed = False
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=limit)

    def __repr__(self) -> str:
        return f"<QueuedSocket user={self.user_id} queued={self._queue.qsize()}>"

    def offer(self, event: dict[str, Any]) -> bool:
        return offer_to(self._queue, event)

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        # Wake the subscription (a full queue has a waiter-free slot soon: drop one).
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while not self.closed:
            event = await self._queue.get()
            if event is None:
                return
            yield event


async def notifications_of(app: web.Application, user_id: int) -> AsyncIterator[dict[str, Any]]:
    """The user's notification events from now on, while the subscription lasts."""
    hub = app[keys.HUB]
    socket = QueuedSocket(user_id, limit=app[keys.SETTINGS].ws.send_queue)
    hub.add(socket)
    try:
        async for event in socket.events():
            if event.get("type") == "notification":
                yield event
    finally:
        hub.discard(socket)

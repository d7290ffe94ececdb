"""What the core knows of live sockets: the hub that the event bus feeds and
the app closes on shutdown. `ws/hub.py` implements it; picshare never imports
`ws/` (handlers and ws sit above the core, not beside it)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Socket(Protocol):
    """One open socket's outbox, as the hub drives it."""

    @property
    def user_id(self) -> int: ...

    def offer(self, event: dict[str, Any]) -> bool:
        """Queue an event; False when the socket cannot take more (a slow consumer)."""

    async def close(self, code: int, reason: str) -> None: ...


class SocketHub(Protocol):
    """This process's open sockets, by user."""

    @property
    def count(self) -> int: ...

    def add(self, conn: Socket) -> None: ...

    def discard(self, conn: Socket) -> None: ...

    async def deliver(self, user_id: int, event: dict[str, Any]) -> None:
        """The bus listener: push `event` to each of that user's sockets here."""

    async def close_all(self) -> None:
        """Close every socket with GOING_AWAY (shutdown)."""


def offer_to(queue: asyncio.Queue[Any], event: dict[str, Any]) -> bool:
    """A socket's `offer`: queue the event unless the queue is full (a slow
    consumer, whom the hub then closes); whether it went in."""
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        return False
    return True

"""The event bus: how a notification reaches every process that holds a socket
of its user. In-process by default; Redis pub/sub (storage/redis_bus.py) when
several processes run.

Events are published after the transaction that wrote them commits. A process
that dies in between loses only the live push: the row is there, and a
client reconnecting with `?since=` gets it from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Listener = Callable[[int, dict[str, Any]], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, user_id: int, event: dict[str, Any]) -> None:
        """Deliver `event` to `user_id`'s sockets, in whichever process holds them."""
        ...

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(user_id, event)` for every event published anywhere."""
        ...


class InProcessBus:
    """One process: publishing is calling the listeners."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        return f"<InProcessBus listeners={len(self._listeners)}>"

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, user_id: int, event: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                await listener(user_id, event)
            except Exception:
                log.exception("event listener failed")

"""Open sockets per user, and pushing events to them.

Each socket has a bounded queue drained by its own sender task, so one slow
reader never blocks the others; when its queue is full it is a slow consumer
and is closed (1008, "slow consumer") instead of growing memory. Shutdown
closes every socket with 1001 GOING_AWAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode

from picshare.live import Socket, offer_to

log = logging.getLogger(__name__)

SLOW_CONSUMER = WSCloseCode.POLICY_VIOLATION  # 1008


class Connection:
    """One socket's outbox. `send` and `close` are the socket's own (injected for tests)."""

    __slots__ = ("_close", "_queue", "_send", "_sender", "closed", "skip_up_to", "user_id")

    def __init__(
        self,
        user_id: int,
        *,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        limit: int,
    ) -> None:
        self.user_id = user_id
        self._send = send
        self._close = close
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=limit)
        self._sender: asyncio.Task[None] | None = None
        self.closed = False
        # Notifications up to this id were replayed already (no duplicates).
        self.skip_up_to = 0

    def __repr__(self) -> str:
        return f"<Connection user={self.user_id} queued={self._queue.qsize()}>"

    def start(self) -> None:
        self._sender = asyncio.create_task(self._drain(), name=f"ws-sender-{self.user_id}")

    def offer(self, event: dict[str, Any]) -> bool:
        """Queue an event; False if the queue is full (a slow consumer)."""
        return offer_to(self._queue, event)

    async def _drain(self) -> None:
        while True:
            event = await self._queue.get()
            event_id = event.get("id")
            if (
                isinstance(event_id, str)
                and event_id.isdigit()
                and int(event_id) <= self.skip_up_to
            ):
                continue
            await self._send(event)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
        with contextlib.suppress(Exception):
            await self._close(code, reason)


class Hub:
    """Connections by user id, in this process (picshare.live.SocketHub)."""

    __slots__ = ("_by_user", "_closing", "_count", "_on_count", "_on_sent", "_on_slow")

    def __init__(
        self,
        *,
        on_count: Callable[[int], None] = lambda n: None,
        on_sent: Callable[[], None] = lambda: None,
        on_slow: Callable[[], None] = lambda: None,
    ) -> None:
        self._by_user: defaultdict[int, set[Socket]] = defaultdict(set)
        # Kept as it changes: summing over 10k users on every connect costs ~1 s.
        self._count = 0
        # Closes in flight, referenced so they are not garbage-collected mid-way.
        self._closing: set[asyncio.Task[None]] = set()
        self._on_count = on_count
        self._on_sent = on_sent
        self._on_slow = on_slow

    def __repr__(self) -> str:
        return f"<Hub users={len(self._by_user)} sockets={self.count}>"

    @property
    def count(self) -> int:
        return self._count

    def add(self, conn: Socket) -> None:
        conns = self._by_user[conn.user_id]
        if conn not in conns:
            conns.add(conn)
            self._count += 1
        self._on_count(self._count)

    def discard(self, conn: Socket) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None and conn in conns:
            conns.discard(conn)
            self._count -= 1
            if not conns:
                del self._by_user[conn.user_id]
        self._on_count(self._count)

    async def deliver(self, user_id: int, event: dict[str, Any]) -> None:
        """The bus listener: queue the event on each socket of that user here."""
        for conn in list(self._by_user.get(user_id, ())):
            if conn.offer(event):
                self._on_sent()
            else:
                log.info("closing a slow WebSocket consumer of user %s", user_id)
                self._on_slow()
                self.discard(conn)
                task = asyncio.create_task(conn.close(SLOW_CONSUMER, "slow consumer"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        conns = [c for group in self._by_user.values() for c in group]
        await asyncio.gather(
            *(c.close(WSCloseCode.GOING_AWAY, "server shutting down") for c in conns)
        )
        self._by_user.clear()
        self._count = 0
        self._on_count(0)

"""The hub's policies with real asyncio: fan-out, slow consumers, shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSCloseCode

from ws.hub import SLOW_CONSUMER, Connection, Hub


class Socket:
    """A socket's two ends as the hub sees them; `block` makes sending hang."""

    def __init__(self, block: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed_with: tuple[int, str] | None = None
        self.block = asyncio.Event() if block else None

    async def send(self, event: dict[str, Any]) -> None:
        if self.block is not None:
            await self.block.wait()
        self.sent.append(event)

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_fan_out_to_every_socket_of_the_user_only() -> None:
    hub = Hub()
    a1, a2, b = Socket(), Socket(), Socket()
    conns = [
        Connection(1, send=a1.send, close=a1.close, limit=10),
        Connection(1, send=a2.send, close=a2.close, limit=10),
        Connection(2, send=b.send, close=b.close, limit=10),
    ]
    for c in conns:
        hub.add(c)
        c.start()
    await hub.deliver(1, {"type": "notification", "id": "5"})
    await asyncio.sleep(0.01)
    assert a1.sent == a2.sent == [{"type": "notification", "id": "5"}]
    assert b.sent == []
    for c in conns:
        await c.close(1000, "")


async def test_slow_consumer_is_closed_not_buffered() -> None:
    metrics: list[str] = []
    hub = Hub(on_slow=lambda: metrics.append("slow"))
    slow = Socket(block=True)
    conn = Connection(1, send=slow.send, close=slow.close, limit=3)
    hub.add(conn)
    conn.start()
    for i in range(10):
        await hub.deliver(1, {"id": str(i)})
    await asyncio.sleep(0.01)
    assert slow.closed_with == (SLOW_CONSUMER, "slow consumer")
    assert metrics == ["slow"]
    assert hub.count == 0


async def test_replayed_ids_are_not_sent_twice() -> None:
    sock = Socket()
    conn = Connection(1, send=sock.send, close=sock.close, limit=10)
    conn.offer({"id": "7"})
    conn.offer({"id": "9"})
    conn.skip_up_to = 8  # 7 was replayed from the database already
    conn.start()
    await asyncio.sleep(0.01)
    assert sock.sent == [{"id": "9"}]
    await conn.close(1000, "")


async def test_shutdown_closes_with_going_away() -> None:
    hub = Hub()
    socks = [Socket() for _ in range(3)]
    for i, s in enumerate(socks):
        c = Connection(i, send=s.send, close=s.close, limit=5)
        hub.add(c)
        c.start()
    await hub.close_all()
    assert all(
        s.closed_with is not None and s.closed_with[0] == WSCloseCode.GOING_AWAY for s in socks
    )
    assert hub.count == 0

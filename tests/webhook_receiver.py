"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 that
records every request and answers from a script (status, headers, a delay),
then 200 once the script runs out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow receiver)


@dataclass(frozen=True, slots=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    def __init__(self, script: list[Answer] | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self.port = 0
        self._arrived = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Receiver port={self.port} received={len(self.received)}>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(headers, await request.read(), time.monotonic()))
        self._arrived.set()
        answer = self.script.pop(0) if self.script else Answer()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, headers=answer.headers, text="ok")

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received

    def verified(self, secret: str) -> list[dict[str, object]]:
        """Every body, checked with the reference Standard Webhooks library."""
        checker = Webhook(secret)
        return [dict(checker.verify(r.body, r.headers)) for r in self.received]


@asynccontextmanager
async def receiver(script: list[Answer] | None = None) -> AsyncIterator[Receiver]:
    found = Receiver(script)
    app = web.Application()
    app.router.add_post("/hook", found._handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.port = int(runner.addresses[0][1])
    # The same port on ::1 too, for URLs naming the IPv6 loopback.
    await web.TCPSite(runner, "::1", found.port).start()
    try:
        yield found
    finally:
        await runner.cleanup()

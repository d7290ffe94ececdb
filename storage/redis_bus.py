"""The event bus over Redis pub/sub, for several processes.

One channel carries every event as `{"u": user_id, "e": event}`; each process
subscribes once and hands events to its hub, which keeps those of users it
holds sockets for. (At millions of users, per-user or sharded channels would
cut the traffic each process reads; one channel keeps this simple and exact.)
The subscriber reconnects on its own after a Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
CHANNEL = "picshare:events"
Listener = Callable[[int, dict[str, Any]], Awaitable[None]]


class RedisBus:
    __slots__ = ("_listeners", "_redis", "_task", "ready")

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        # Set once the subscription is live: publishing before it may be missed here.
        self.ready = asyncio.Event()

    def __repr__(self) -> str:
        return f"<RedisBus listeners={len(self._listeners)} ready={self.ready.is_set()}>"

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, user_id: int, event: dict[str, Any]) -> None:
        try:
            await self._redis.publish(CHANNEL, orjson.dumps({"u": user_id, "e": event}))
        except (RedisError, OSError) as exc:
            # The row is stored; the client gets it on its next `?since=` reconnect.
            log.warning("event not published (Redis): %s", exc)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.ready.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    data = orjson.loads(message["data"])
                    for listener in self._listeners:
                        try:
                            await listener(int(data["u"]), data["e"])
                        except Exception:
                            log.exception("event listener failed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.ready.clear()
                log.warning("event bus lost Redis (%s); resubscribing", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

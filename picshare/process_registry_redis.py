"""The site's processes in Redis: one key per process, expiring FORGET_AFTER
seconds after its last heartbeat, so a killed process drops out by itself."""

from __future__ import annotations

import asyncio

import orjson
from redis.asyncio import Redis

from picshare.process_registry import FORGET_AFTER, ProcessInfo

PREFIX = "picshare:process:"


class RedisRegistry:
    __slots__ = ("_redis", "_timeout")

    def __init__(self, redis: Redis, *, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    def __repr__(self) -> str:
        return "<RedisRegistry>"

    async def beat(self, info: ProcessInfo) -> None:
        async with asyncio.timeout(self._timeout):
            await self._redis.set(
                PREFIX + info.id, orjson.dumps(info.to_json()), px=int(FORGET_AFTER * 1000)
            )

    async def leave(self, process_id: str) -> None:
        async with asyncio.timeout(self._timeout):
            await self._redis.delete(PREFIX + process_id)

    async def processes(self) -> list[ProcessInfo]:
        async with asyncio.timeout(self._timeout):
            keys = [key async for key in self._redis.scan_iter(match=PREFIX + "*", count=500)]
            values = await self._redis.mget(keys) if keys else []
        found = [ProcessInfo.from_json(orjson.loads(v)) for v in values if v is not None]
        return sorted(found, key=lambda p: (p.kind, p.id))

"""Read-your-writes marks (storage/wal_marks.py): raised, never lowered, and
forgotten after their time; in this process and in a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from storage.wal_marks import MemoryMarks, RedisMarks, WalMarks


async def _check(marks: WalMarks) -> None:
    assert await marks.get(7) == 0
    await marks.put(7, 100)
    await marks.put(7, 50)  # an older write reported late
    assert await marks.get(7) == 100
    await marks.put(7, 150)
    assert await marks.get(7) == 150
    assert await marks.get(8) == 0
    await asyncio.sleep(0.35)
    assert await marks.get(7) == 0


async def test_memory_marks() -> None:
    await _check(MemoryMarks(ttl=0.3))


async def test_memory_marks_stay_bounded() -> None:
    marks = MemoryMarks(ttl=60, max_users=10)
    for user in range(100):
        await marks.put(user, user + 1)
    assert len(marks._marks) <= 10
    assert await marks.get(99) == 100  # the newest are kept


async def test_redis_marks(redis_url: str) -> None:
    client = Redis.from_url(redis_url, socket_timeout=2)
    try:
        await _check(RedisMarks(client, ttl=0.3, timeout=2))
        # Two processes' marks are one: another client sees the first's.
        await RedisMarks(client, ttl=5, timeout=2).put(9, 1234)
        other = Redis.from_url(redis_url, socket_timeout=2)
        try:
            assert await RedisMarks(other, ttl=5, timeout=2).get(9) == 1234
        finally:
            await other.aclose()
    finally:
        await client.aclose()


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_a_mark_must_live(ttl: float) -> None:
    marks = MemoryMarks(ttl=ttl)
    assert asyncio.run(_put_get(marks)) == 0


async def _put_get(marks: MemoryMarks) -> int:
    await marks.put(1, 10)
    await asyncio.sleep(0.01)
    return await marks.get(1)

"""While the shared limiter fails: fail-open policies allow unmetered, the
others are limited in this process; errors counted, logged at most every 30 s."""

from __future__ import annotations

import logging
import socket

import pytest
from redis.asyncio import Redis

from picshare.ratelimit import (
    BackendError,
    Decision,
    FallbackLimiter,
    MemoryLimiter,
    Policy,
    RedisLimiter,
)

READS = Policy("reads", quota=100, window=60, on_backend_error="open")
WRITES = Policy("writes", quota=2, window=60, on_backend_error="local")


class Flaky:
    """A shared limiter that works, or fails, as the test says."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def hit_now(self, key: str, policy: Policy) -> Decision | None:
        return None

    async def hit(self, key: str, policy: Policy) -> Decision:
        self.calls += 1
        if self.down:
            raise BackendError("connection refused")
        return Decision(policy, True, 42, 0, 0)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, errors: list[BackendError]) -> tuple[Flaky, FallbackLimiter]:
    primary = Flaky()
    limiter = FallbackLimiter(
        primary=primary, local=MemoryLimiter(), on_error=errors.append, clock=clock
    )
    return primary, limiter


async def test_reads_fail_open_and_writes_are_limited_locally() -> None:
    clock, errors = Clock(), list[BackendError]()
    primary, limiter = make(clock, errors)
    assert (await limiter.hit("ip:1", WRITES)).remaining == 42  # from the primary
    primary.down = True
    read = await limiter.hit("ip:1", READS)
    assert read.allowed and read.unmetered
    writes = [await limiter.hit("ip:1", WRITES) for _ in range(3)]
    assert [w.allowed for w in writes] == [True, True, False]
    assert not any(w.unmetered for w in writes)
    assert len(errors) == 1  # one failure, then the cooldown


async def test_the_primary_is_tried_again_after_the_cooldown() -> None:
    clock, errors = Clock(), list[BackendError]()
    primary, limiter = make(clock, errors)
    primary.down = True
    await limiter.hit("k", READS)
    await limiter.hit("k", READS)
    assert primary.calls == 1
    clock.now += 1.0
    primary.down = False
    assert (await limiter.hit("k", READS)).remaining == 42
    assert primary.calls == 2


async def test_failures_are_logged_at_most_every_30_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, errors = Clock(), list[BackendError]()
    primary, limiter = make(clock, errors)
    primary.down = True
    with caplog.at_level(logging.WARNING, logger="picshare.ratelimit.fallback"):
        for _ in range(20):  # one failure a second for 20 s
            await limiter.hit("k", READS)
            clock.now += 1.0
        assert len(caplog.records) == 1
        clock.now += 10.0
        await limiter.hit("k", READS)
    assert len(errors) == 21
    assert len(caplog.records) == 2
    assert "21 time(s)" not in caplog.text and "20 time(s)" in caplog.text


async def test_with_redis_on_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    errors: list[BackendError] = []
    limiter = FallbackLimiter(
        primary=RedisLimiter(client, timeout=0.5), local=MemoryLimiter(), on_error=errors.append
    )
    try:
        assert (await limiter.hit("ip:1", READS)).unmetered
        assert [(await limiter.hit("ip:1", WRITES)).allowed for _ in range(3)] == [
            True,
            True,
            False,
        ]
        assert len(errors) == 1
    finally:
        await client.aclose()

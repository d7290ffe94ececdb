"""GCRA in Redis against a real server: the script agrees with `gcra.decide`
and with the in-process limiter, stores what it should, and turns every
failure into a BackendError within the timeout."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from picshare.ratelimit import BackendError, MemoryLimiter, Policy, RedisLimiter, decide
from picshare.ratelimit.redis_limiter import KEY_PREFIX

S = 1_000_000
POLICY = Policy("writes", quota=5, window=50)  # T = 10 s
SLACK = 200_000  # µs: the script's clock read may trail ours by this much


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


async def redis_now(client: Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * S + int(micros)


@pytest.mark.parametrize(
    "offset",
    # The stored TAT relative to now; half-intervals keep clear of every boundary.
    [None, -5 * S, 0, 5 * S, 15 * S, 25 * S, 35 * S, 45 * S, 55 * S, 75 * S],
)
async def test_the_script_is_decide(client: Redis, offset: int | None) -> None:
    limiter = RedisLimiter(client, timeout=2)
    key = f"{KEY_PREFIX}writes:k"
    now = await redis_now(client)
    tat = None if offset is None else now + offset
    if tat is not None:
        await client.set(key, str(tat), px=120_000)
    got = await limiter.hit("k", POLICY)
    want, new_tat = decide(POLICY, now, tat)
    assert (got.allowed, got.remaining) == (want.allowed, want.remaining)
    assert 0 <= want.reset_us - got.reset_us < SLACK
    if not want.allowed:
        assert 0 <= want.retry_us - got.retry_us < SLACK
    stored = await client.get(key)
    if new_tat is None:
        assert stored == (None if tat is None else str(tat).encode())
    else:
        assert stored is not None and stored.isdigit()  # not "1.7e+15"
        assert 0 <= int(stored) - new_tat < SLACK


async def test_a_burst_agrees_with_the_in_process_limiter(client: Redis) -> None:
    shared, local = RedisLimiter(client, timeout=2), MemoryLimiter()
    policy = Policy("uploads", quota=10, window=60)
    for _ in range(13):
        a, b = await shared.hit("user:1", policy), await local.hit("user:1", policy)
        assert (a.allowed, a.remaining, a.reset, a.retry_after) == (
            b.allowed,
            b.remaining,
            b.reset,
            b.retry_after,
        )


async def test_the_key_expires_when_it_stops_mattering(client: Redis) -> None:
    limiter = RedisLimiter(client, timeout=2)
    for _ in range(3):
        await limiter.hit("ip:10.0.0.1", POLICY)
    ttl = await client.pttl(f"{KEY_PREFIX}writes:ip:10.0.0.1")
    assert 29_000 < ttl <= 30_000


async def test_a_lost_script_cache_is_reloaded(client: Redis) -> None:
    limiter = RedisLimiter(client, timeout=2)
    assert (await limiter.hit("a", POLICY)).allowed
    await client.script_flush()
    decision = await limiter.hit("a", POLICY)
    assert decision.allowed and decision.remaining == 3


async def test_concurrent_hits_admit_exactly_the_quota(client: Redis) -> None:
    limiter = RedisLimiter(client, timeout=2)
    decisions = await asyncio.gather(*(limiter.hit("user:9", POLICY) for _ in range(60)))
    assert sum(d.allowed for d in decisions) == 5
    assert sorted(d.remaining for d in decisions if d.allowed) == [0, 1, 2, 3, 4]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_is_a_backend_error() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{_closed_port()}/0", socket_timeout=5)
    try:
        limiter = RedisLimiter(client, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(BackendError):
            await limiter.hit("k", POLICY)
        assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()


async def test_a_silent_server_is_a_backend_error_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=30)
        try:
            limiter = RedisLimiter(client, timeout=0.3)
            started = time.monotonic()
            with pytest.raises(BackendError):
                await limiter.hit("k", POLICY)
            assert 0.25 < time.monotonic() - started < 1.5
        finally:
            await client.aclose()

"""The in-process limiter: GCRA per key and policy, atomic on the loop, bounded memory."""

from __future__ import annotations

import asyncio

from picshare.ratelimit import MemoryLimiter, Policy

S = 1_000_000
WRITES = Policy("writes", quota=3, window=30)  # T = 10 s
READS = Policy("reads", quota=5, window=1)


class Clock:
    def __init__(self, now: int = 1_000 * S) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_burst_then_one_per_interval() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    first = [await limiter.hit("ip:1", WRITES) for _ in range(4)]
    assert [d.allowed for d in first] == [True, True, True, False]
    assert [d.remaining for d in first] == [2, 1, 0, 0]
    assert first[-1].retry_after == 10
    clock.now += 10 * S
    assert (await limiter.hit("ip:1", WRITES)).allowed
    assert not (await limiter.hit("ip:1", WRITES)).allowed


async def test_keys_and_policies_have_separate_budgets() -> None:
    limiter = MemoryLimiter(clock=Clock())
    for _ in range(3):
        await limiter.hit("user:1", WRITES)
    assert not (await limiter.hit("user:1", WRITES)).allowed
    assert (await limiter.hit("user:2", WRITES)).allowed
    assert (await limiter.hit("user:1", READS)).allowed
    # The key is the policy's name: a tighter quota after a settings change
    # still sees the debt already run up.
    assert not (await limiter.hit("user:1", Policy("writes", 2, 30))).allowed


async def test_concurrent_hits_admit_exactly_the_quota() -> None:
    limiter = MemoryLimiter()
    policy = Policy("uploads", quota=10, window=3600)
    decisions = await asyncio.gather(*(limiter.hit("user:7", policy) for _ in range(100)))
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))


async def test_expired_keys_are_swept() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    for i in range(5_000):
        await limiter.hit(f"ip:{i}", READS)  # each key's TAT: 0.2 s ahead
        clock.now += 1_000  # 1 ms apart
    # Only keys of the last 200 ms are live; swept at each doubling past 1024.
    assert len(limiter) <= 2 * 1024
    clock.now += 10 * S
    for i in range(1_100):
        await limiter.hit(f"new:{i}", READS)
    assert len(limiter) <= 1_100 + 1


async def test_live_keys_past_the_cap_forgive_the_smallest_debts() -> None:
    clock = Clock()
    limiter = MemoryLimiter(max_keys=1_000, clock=clock)
    hour = Policy("uploads", quota=10, window=3600)
    # The first client is deep in debt; then 5,000 one-off clients arrive.
    for _ in range(10):
        await limiter.hit("heavy", hour)
    for i in range(5_000):
        clock.now += 1
        await limiter.hit(f"ip:{i}", hour)
        assert len(limiter) <= 1_000
    assert not (await limiter.hit("heavy", hour)).allowed  # still remembered

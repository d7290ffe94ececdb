"""GCRA's exact behaviour: a burst of `quota`, then one per interval, with the
remaining count, reset and retry-after a client is told."""

from __future__ import annotations

import random

import pytest

from picshare.ratelimit import Decision, Policy, decide

S = 1_000_000  # microseconds in a second
UPLOADS = Policy("uploads", quota=10, window=60)  # T = 6 s


def run(policy: Policy, times: list[int], tat: int | None = None) -> list[Decision]:
    decisions = []
    for now in times:
        decision, new_tat = decide(policy, now, tat)
        if new_tat is not None:
            tat = new_tat
        decisions.append(decision)
    return decisions


def test_a_burst_of_quota_then_refused() -> None:
    now = 1_000 * S
    decisions = run(UPLOADS, [now] * 12)
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
    assert [d.remaining for d in decisions] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]
    assert [d.reset for d in decisions[:10]] == [6, 12, 18, 24, 30, 36, 42, 48, 54, 60]
    refused = decisions[10]
    assert refused.retry_us == 6 * S
    assert refused.retry_after == 6
    assert refused.reset_us == 60 * S


def test_the_issue_example_r3_t42() -> None:
    seventh = run(UPLOADS, [0] * 7)[-1]
    assert (seventh.remaining, seventh.reset) == (3, 42)


def test_then_one_per_interval() -> None:
    t0 = 50 * S
    times = [t0] * 10 + [t0 + 6 * S - 1, t0 + 6 * S, t0 + 6 * S, t0 + 12 * S]
    decisions = run(UPLOADS, times)
    assert [d.allowed for d in decisions[10:]] == [False, True, False, True]
    # One microsecond early: told to wait exactly that microsecond (rounded up to 1 s).
    assert decisions[10].retry_us == 1
    assert decisions[10].retry_after == 1
    assert decisions[12].retry_us == 6 * S


def test_refusals_do_not_lengthen_the_wait() -> None:
    t0 = 0
    decisions = run(UPLOADS, [t0] * 10 + [t0 + i * S for i in range(6)] + [t0 + 6 * S])
    assert not any(d.allowed for d in decisions[10:16])
    assert decisions[-1].allowed


def test_an_idle_key_gets_the_whole_quota_back() -> None:
    decisions = run(UPLOADS, [0] * 10 + [60 * S] * 11)
    assert [d.allowed for d in decisions[10:]] == [True] * 10 + [False]


def test_a_partly_rested_key_gets_part_of_the_burst() -> None:
    decisions = run(UPLOADS, [0] * 10 + [30 * S] * 6)
    assert [d.allowed for d in decisions[10:]] == [True] * 5 + [False]
    assert decisions[10].remaining == 4


def test_no_span_admits_more_than_the_burst_plus_the_refill() -> None:
    """7 per 60 s has an interval of 8571428.57 µs, rounded up. A client sending
    at random moments never gets more than 7 + t/T in any span of t seconds,
    with the exact T = 60/7 s, and does get close to 7 a minute over time."""
    policy = Policy("odd", quota=7, window=60)
    assert policy.interval == 8_571_429
    rng = random.Random(7)
    now, tat, admitted = 0, None, []
    for _ in range(5_000):
        now += rng.randrange(1, 2 * S)
        decision, new_tat = decide(policy, now, tat)
        if decision.allowed:
            tat = new_tat
            admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            # (count - quota) <= span / T, i.e. (count - 7) * 60 s <= 7 * span
            assert (j - i + 1 - 7) * 60 * S <= 7 * (admitted[j] - start)
    assert len(admitted) / (now / (60 * S)) > 6.9


def test_a_tat_in_the_past_is_the_same_as_none() -> None:
    assert decide(UPLOADS, 100 * S, 40 * S) == decide(UPLOADS, 100 * S, None)


@pytest.mark.parametrize(
    ("microseconds", "seconds"), [(0, 0), (1, 1), (S, 1), (S + 1, 2), (42 * S - 5, 42)]
)
def test_seconds_are_rounded_up(microseconds: int, seconds: int) -> None:
    d = Decision(UPLOADS, False, 0, microseconds, microseconds)
    assert d.reset == seconds
    assert d.retry_after == max(1, seconds)


def test_an_unmetered_decision_allows_with_nothing_counted() -> None:
    d = Decision.unmetered_for(UPLOADS)
    assert d.allowed and d.unmetered
    assert d.retry_after == 0

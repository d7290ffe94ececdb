"""The gateway's circuit breaker per upstream (picshare/circuit_breaker.py)."""

from __future__ import annotations

from picshare.circuit_breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> State:
    """Read afresh each time (a property that mypy would otherwise narrow)."""
    return breaker.state


def test_it_opens_after_failures_in_a_row_only() -> None:
    breaker = CircuitBreaker(failures=3, cooldown=10, clock=Clock())
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # a success resets the count
    breaker.failed()
    breaker.failed()
    assert state(breaker) == "closed" and breaker.allow()
    breaker.failed()
    assert state(breaker) == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == 10


def test_half_open_lets_one_trial_through_which_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=10, clock=clock)
    breaker.failed()
    clock.now += 9.5
    assert not breaker.allow() and breaker.retry_after() == 1
    clock.now += 1
    assert state(breaker) == "half-open"
    assert breaker.allow()
    assert not breaker.allow()  # one trial at a time
    breaker.failed()  # the trial failed: open for another cooldown
    assert state(breaker) == "open" and breaker.retry_after() == 10
    clock.now += 10
    assert breaker.allow()
    breaker.succeeded()
    assert state(breaker) == "closed"
    assert breaker.allow() and breaker.allow()


def test_a_trial_that_never_reports_does_not_hold_the_breaker_forever() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=10, clock=clock)
    breaker.failed()
    clock.now += 10
    assert breaker.allow()  # the trial's client goes away: no success, no failure
    clock.now += 5
    assert not breaker.allow()
    clock.now += 5
    assert breaker.allow()

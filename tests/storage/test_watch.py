"""Replica lag as time against the primary's WAL history (storage/watch.py)."""

from __future__ import annotations

import math

from storage.lsn import format_lsn, parse_lsn
from storage.watch import LagClock


def test_lsn_text_round_trips() -> None:
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert format_lsn(0x16_B374D848) == "16/B374D848"
    assert parse_lsn(None) == 0


def test_caught_up_is_no_lag_however_idle_the_primary() -> None:
    clock = LagClock()
    clock.saw(100, at=0.0)
    assert clock.lag(100, now=3600.0) == 0.0


def test_lag_counts_from_when_the_primary_first_passed_the_replay() -> None:
    clock = LagClock()
    clock.saw(100, at=10.0)
    clock.saw(200, at=12.0)
    clock.saw(300, at=15.0)
    assert clock.lag(150, now=20.0) == 8.0  # the primary passed 150 by 12.0
    assert clock.lag(250, now=20.0) == 5.0
    assert clock.lag(99, now=20.0) == math.inf  # behind all we know: too far
    assert clock.lag(300, now=20.0) == 0.0


def test_positions_seen_out_of_order_keep_the_first_time() -> None:
    clock = LagClock()
    clock.saw(100, at=0.0)
    clock.saw(200, at=1.0)
    clock.saw(150, at=2.0)  # a write's mark reported after a later poll
    clock.saw(200, at=3.0)
    assert clock.latest() == 200
    assert clock.lag(150, now=5.0) == 4.0


def test_a_write_storm_cannot_hide_a_stuck_replica() -> None:
    clock = LagClock(keep=100, step=0.01)
    clock.saw(1, at=0.0)
    for i in range(10_000):  # 1,000 writes a second for 10 s
        clock.saw(2 + i, at=i / 1000)
    assert clock.lag(1, now=10.0) == math.inf  # stuck since the start: unknown, too far
    assert clock.lag(9_990, now=10.0) < 0.05  # nearly caught up: nearly no lag

"""Counters without locks: the same series as prometheus_client's Counter."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from picshare.loop_counters import LoopCounter


def test_counts_exported_as_a_prometheus_counter() -> None:
    registry = CollectorRegistry(auto_describe=True)
    counter = LoopCounter("picshare_things", "Things", ["kind", "result"], registry)
    counter.labels("a", "ok").inc()
    counter.labels(kind="a", result="ok").inc(2)
    counter.labels("b", "bad").inc()
    text = generate_latest(registry).decode()
    assert "# TYPE picshare_things_total counter" in text
    assert 'picshare_things_total{kind="a",result="ok"} 3.0' in text
    assert 'picshare_things_total{kind="b",result="bad"} 1.0' in text
    assert registry.get_sample_value("picshare_things_total", {"kind": "a", "result": "ok"}) == 3


def test_wrong_labels_and_negative_amounts_are_refused() -> None:
    counter = LoopCounter("picshare_x", "X", ["kind"], CollectorRegistry())
    with pytest.raises(ValueError, match="labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match="labels"):
        counter.labels(other="a")
    with pytest.raises(ValueError, match="only go up"):
        counter.labels("a").inc(-1)
    registry = CollectorRegistry()
    LoopCounter("picshare_y", "Y", [], registry)
    with pytest.raises(ValueError, match="Duplicated"):
        LoopCounter("picshare_y", "Y", [], registry)

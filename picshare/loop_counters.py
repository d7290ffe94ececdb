"""Labelled counters counted without locks, for counts made on the event loop.

prometheus_client's Counter takes a lock on every `inc`; a photo read made
three (two cache hits and a rate-limit decision), a measurable share of a
small request. These counters are bumped only on the event loop's one
thread (the caches and the rate limiter are async), so a plain number does;
the collector turns them into the same `<name>_total{labels}` series at
scrape time, as request_metrics.py does for requests (without the
`_created` timestamps prometheus_client adds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["Count", "LoopCounter"]


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class LoopCounter(Collector):
    """`labels(...)` gives a child with `inc`, like prometheus_client's Counter."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Count] = {}
        registry.register(self)

    def labels(self, *values: str, **named: str) -> Count:
        if named:
            if values or set(named) != set(self._labelnames):
                raise ValueError(f"{self._name} takes the labels {self._labelnames}")
            values = tuple(named[n] for n in self._labelnames)
        elif len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes the labels {self._labelnames}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Count()
        return child

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        for values, child in sorted(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=list(self._labelnames))

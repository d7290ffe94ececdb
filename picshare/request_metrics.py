"""Request counts and latencies, counted without locks and exported on scrape.

prometheus_client's Counter and Histogram take a lock on every `inc` and
`observe` (three per request with `labels()` lookups), a measurable share
of a small request. Requests are counted on the event loop's one thread,
so plain integers do; this collector turns them into the same series at
scrape time: `picshare_http_requests_total{route,method,status}` and the
histogram `picshare_http_request_seconds{route,method}`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["BUCKETS", "RequestMetrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# `le` labels as prometheus_client's own Histogram writes them ("10.0", "+Inf").
_LE = (*map(floatToGoString, BUCKETS), "+Inf")


class _Series:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class RequestMetrics(Collector):
    """Registered in the app's registry; `observe` is called once per request."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], _Series] = {}
        # Requests being served now (the middleware adds and takes one).
        self.in_flight = 0

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        series = self._latency.get((route, method))
        if series is None:
            series = self._latency[(route, method)] = _Series()
        # bisect_left: a value equal to a bound belongs to that bucket (le).
        series.buckets[bisect_left(BUCKETS, seconds)] += 1
        series.total += seconds

    def collect(
        self,
    ) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "picshare_http_requests_in_flight",
            "Requests this process is serving now",
            value=self.in_flight,
        )
        requests = CounterMetricFamily(
            "picshare_http_requests", "HTTP requests", labels=["route", "method", "status"]
        )
        for (route, method, status), count in sorted(self._counts.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "picshare_http_request_seconds", "HTTP request latency", labels=["route", "method"]
        )
        for (route, method), series in sorted(self._latency.items()):
            cumulative, running = [], 0
            for bound, count in zip(_LE, series.buckets, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            latency.add_metric([route, method], cumulative, series.total)
        yield latency

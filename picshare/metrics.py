"""Prometheus metrics: one registry per app (tests build many apps), exposed at /metrics.

Components get the `Metrics` object from the factory and update the series
that concern them; nothing registers into prometheus_client's global registry.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from picshare.loop_counters import Count, LoopCounter
from picshare.request_metrics import RequestMetrics
from storage.router import DatabaseStatus

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Every series PicShare exports, in one place."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = RequestMetrics()
        r.register(self.requests)
        self.jobs_queued = Gauge("picshare_jobs_queue_depth", "Jobs queued or running", registry=r)
        self.outbox_backlog = Gauge(
            "picshare_outbox_backlog", "Domain events not relayed yet (broker away)", registry=r
        )
        self.ws_connections = Gauge(
            "picshare_ws_connections", "Open WebSocket connections in this process", registry=r
        )
        self.ws_events = Counter("picshare_ws_events_sent", "Events pushed to sockets", registry=r)
        self.ws_slow_disconnects = Counter(
            "picshare_ws_slow_consumer_disconnects", "Sockets closed for a full buffer", registry=r
        )
        # Counted on every request: without locks (picshare/loop_counters.py).
        self.cache_requests = LoopCounter(
            "picshare_cache_requests", "Cache lookups", ["cache", "result"], r
        )
        self.cache_recomputes = LoopCounter(
            "picshare_cache_recomputes", "Values recomputed after a miss", ["cache"], r
        )
        self.cache_errors = Counter(
            "picshare_cache_errors", "Cache backend errors (served from the database)", registry=r
        )
        self.ratelimit_decisions = LoopCounter(
            "picshare_ratelimit_decisions", "Rate limit decisions", ["policy", "result"], r
        )
        self._decisions: dict[tuple[str, str], Count] = {}
        self.ratelimit_errors = Counter(
            "picshare_ratelimit_backend_errors", "Rate limiter backend errors", registry=r
        )
        # The payments ledger's serializable transactions run again after a
        # conflict (picshare/payments.py): how often says how contended it is.
        self.payment_retries = Counter(
            "picshare_payment_retries",
            "Payment transactions run again after a serialization failure or deadlock",
            registry=r,
        )
        labels = ["database", "role"]
        self.database_up = Gauge(
            "picshare_database_up", "1 while the database answers its watcher", labels, registry=r
        )
        self.database_lag = Gauge(
            "picshare_database_replay_lag_seconds",
            "How far a replica's replay is behind the primary (0 on the primary)",
            labels,
            registry=r,
        )
        self.database_in_use = Gauge(
            "picshare_database_connections_in_use", "Pool connections lent out", labels, registry=r
        )
        self.database_connections = Gauge(
            "picshare_database_connections", "Pool connections open", labels, registry=r
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time one request (picshare/request_metrics.py: no locks)."""
        self.requests.observe(route, method, status, seconds)

    def count_decision(self, policy: str, result: str) -> None:
        """A rate-limit decision (a few policies, three results: bounded)."""
        # The child per pair is kept: `labels` checks its arguments each call.
        child = self._decisions.get((policy, result))
        if child is None:
            child = self._decisions[policy, result] = self.ratelimit_decisions.labels(
                policy, result
            )
        child.inc()

    def databases(self, statuses: Sequence[DatabaseStatus]) -> None:
        """Set the per-database gauges from the router's view (at scrape time)."""
        for d in statuses:
            self.database_up.labels(d.label, d.role).set(1 if d.up else 0)
            self.database_lag.labels(d.label, d.role).set(d.lag_seconds)
            self.database_in_use.labels(d.label, d.role).set(d.in_use)
            self.database_connections.labels(d.label, d.role).set(d.size)

    def render(self) -> bytes:
        return generate_latest(self.registry)

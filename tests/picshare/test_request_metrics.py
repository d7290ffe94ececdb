"""Request counts and latencies come out as the Prometheus series they were."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from picshare.request_metrics import RequestMetrics


def test_counts_and_cumulative_buckets() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics()
    registry.register(metrics)
    metrics.observe("api.photo", "GET", 200, 0.001)  # on a bound: in that bucket (le)
    metrics.observe("api.photo", "GET", 200, 0.003)
    metrics.observe("api.photo", "GET", 404, 20.0)  # past the last bound: +Inf only
    text = generate_latest(registry).decode()
    assert 'picshare_http_requests_total{method="GET",route="api.photo",status="200"} 2.0' in text
    assert 'picshare_http_requests_total{method="GET",route="api.photo",status="404"} 1.0' in text
    bucket = 'picshare_http_request_seconds_bucket{le="%s",method="GET",route="api.photo"} %s'
    assert bucket % ("0.001", "1.0") in text
    assert bucket % ("0.0025", "1.0") in text
    assert bucket % ("0.005", "2.0") in text
    assert bucket % ("10.0", "2.0") in text
    assert bucket % ("+Inf", "3.0") in text
    assert 'picshare_http_request_seconds_count{method="GET",route="api.photo"} 3.0' in text
    assert 'picshare_http_request_seconds_sum{method="GET",route="api.photo"} 20.004' in text

"""RequestMetrics: counts, exact percentiles and the Prometheus exposition."""

from __future__ import annotations

import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.telemetry.metrics import RequestMetrics

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"


def samples(metrics: RequestMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.prometheus().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_requests_errors_and_auth_failures() -> None:
    metrics = RequestMetrics()
    for status in (200, 201, 399, 400, 401, 404, 500, 401):
        metrics.record(CHAT, "POST", status, 0.01)

    snapshot = metrics.snapshot()

    assert snapshot["requests"] == 8
    assert snapshot["errors"] == 5
    assert snapshot["auth_failures"] == 2
    assert snapshot["routes"][CHAT]["requests"] == 8
    assert snapshot["routes"][CHAT]["errors"] == 5


def test_routes_are_counted_apart() -> None:
    metrics = RequestMetrics()
    metrics.record(CHAT, "POST", 200, 0.01)
    metrics.record(MODELS, "GET", 500, 0.01)
    metrics.record(MODELS, "GET", 200, 0.01)

    routes = metrics.snapshot()["routes"]

    assert {r: (v["requests"], v["errors"]) for r, v in routes.items()} == {
        CHAT: (1, 0),
        MODELS: (2, 1),
    }


def test_percentiles_are_nearest_rank_per_route() -> None:
    metrics = RequestMetrics()
    latencies_ms = list(range(1, 101))
    random.Random(4).shuffle(latencies_ms)
    for ms in latencies_ms:
        metrics.record(CHAT, "POST", 200, ms / 1000)
    metrics.record(MODELS, "GET", 200, 0.007)

    chat = metrics.snapshot()["routes"][CHAT]["latency"]
    models = metrics.snapshot()["routes"][MODELS]["latency"]

    assert chat["count"] == 100
    assert chat["p50_ms"] == pytest.approx(50)
    assert chat["p95_ms"] == pytest.approx(95)
    assert chat["p99_ms"] == pytest.approx(99)
    assert chat["avg_ms"] == pytest.approx(50.5)
    assert models["p50_ms"] == models["p99_ms"] == pytest.approx(7)


def test_overall_latency_covers_every_route() -> None:
    metrics = RequestMetrics()
    metrics.record(CHAT, "POST", 200, 0.010)
    metrics.record(MODELS, "GET", 200, 0.030)

    latency = metrics.snapshot()["latency"]

    assert latency["count"] == 2
    assert latency["p50_ms"] == pytest.approx(10)
    assert latency["p99_ms"] == pytest.approx(30)


def test_percentiles_cover_only_the_recent_window() -> None:
    metrics = RequestMetrics(window=3)
    for ms in (900, 1, 2, 3):
        metrics.record(CHAT, "POST", 200, ms / 1000)

    snapshot = metrics.snapshot()

    assert snapshot["requests"] == 4
    assert snapshot["routes"][CHAT]["latency"]["p99_ms"] == pytest.approx(3)
    assert snapshot["latency"]["p99_ms"] == pytest.approx(3)


def test_an_empty_snapshot_has_zero_latencies() -> None:
    snapshot = RequestMetrics().snapshot()

    assert snapshot["requests"] == snapshot["errors"] == snapshot["auth_failures"] == 0
    assert snapshot["latency"] == {
        "count": 0,
        "avg_ms": 0.0,
        "p50_ms": 0.0,
        "p95_ms": 0.0,
        "p99_ms": 0.0,
    }
    assert snapshot["routes"] == {}


def test_prometheus_counts_requests_by_route_method_and_status() -> None:
    metrics = RequestMetrics()
    metrics.record(CHAT, "POST", 200, 0.01)
    metrics.record(CHAT, "POST", 200, 0.01)
    metrics.record(MODELS, "GET", 401, 0.01)

    exposed = samples(metrics)

    chat = frozenset({("route", CHAT), ("method", "POST"), ("status", "200")})
    models = frozenset({("route", MODELS), ("method", "GET"), ("status", "401")})
    assert exposed[("gateway_requests_total", chat)] == 2
    assert exposed[("gateway_requests_total", models)] == 1
    assert exposed[("gateway_auth_failures_total", frozenset())] == 1
    assert exposed[("gateway_request_duration_seconds_count", frozenset({("route", CHAT)}))] == 2


def test_each_instance_has_its_own_registry() -> None:
    first, second = RequestMetrics(), RequestMetrics()
    first.record(MODELS, "GET", 401, 0.01)

    assert samples(second)[("gateway_auth_failures_total", frozenset())] == 0

"""Request metrics: Prometheus series (prometheus-client) and a JSON summary with
exact percentiles over a recent window of each route's latencies."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Litestar adds the charset to text/* itself.
events_log = structlog.get_logger("gateway.upstream")
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "avg_ms": round(sum(ordered) / len(ordered), 3) if ordered else 0.0,
        "p50_ms": round(percentile(ordered, 50), 3),
        "p95_ms": round(percentile(ordered, 95), 3),
        "p99_ms": round(percentile(ordered, 99), 3),
    }


@dataclass
class _RouteWindow:
    requests: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def add(self, ms: float, error: bool) -> None:
        self.requests += 1
        self.errors += error
        self.latencies_ms.append(ms)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency": summarize(list(self.latencies_ms)),
        }


@dataclass
class _TenantWindows:
    """One tenant's requests: what a key of that tenant may see of the metrics."""

    window: int
    total: _RouteWindow = field(init=False)
    routes: dict[str, _RouteWindow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.total = _RouteWindow(latencies_ms=deque(maxlen=self.window))

    def add(self, route: str, ms: float, error: bool) -> None:
        self.total.add(ms, error)
        window = self.routes.get(route)
        if window is None:
            window = self.routes[route] = _RouteWindow(latencies_ms=deque(maxlen=self.window))
        window.add(ms, error)


class RequestMetrics:
    """Counts every answered request. ``route`` must be a path template (bounded
    cardinality), never a raw path or anything from a key."""

    def __init__(self, window: int = 10_000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "gateway_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "gateway_request_duration_seconds",
            "Time to answer (to the last byte)",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._auth_failures = Counter(
            "gateway_auth_failures",
            "Requests refused for a missing or wrong API key",
            registry=self.registry,
        )
        self._stages = Histogram(
            "gateway_stage_duration_seconds", "Time of each /v1/chat stage",
            ["stage"], buckets=_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._events = Counter(
            "gateway_upstream_events", "Retries, failovers and circuit changes per target",
            ["event", "target"], registry=self.registry,
        )  # fmt: skip
        self._dependency_up = Gauge(
            "gateway_dependency_up", "1 when a dependency's last health probe succeeded",
            ["service"], registry=self.registry,
        )  # fmt: skip
        self._stage_windows: dict[str, deque[float]] = {}
        self._window = window
        self._routes: dict[str, _RouteWindow] = {}
        self._tenants: dict[str, _TenantWindows] = {}
        # prometheus-client's labels() validates and locks on every call: each series'
        # child is looked up once (the labels are bounded: route templates).
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._all: deque[float] = deque(maxlen=window)
        self._total = 0
        self._errors = 0
        self._auth_failure_count = 0
        self._started = time.monotonic()

    def record(
        self, route: str, method: str, status: int, seconds: float, tenant: str | None = None
    ) -> None:
        """``tenant``: the caller's, when a key was accepted (never a label: JSON only)."""
        series = self._series.get((route, method, status))
        if series is None:
            series = self._series[(route, method, status)] = (
                self._requests.labels(route, method, str(status)),
                self._duration.labels(route),
            )
        series[0].inc()
        series[1].observe(seconds)
        window = self._routes.get(route)
        if window is None:
            window = self._routes[route] = _RouteWindow(latencies_ms=deque(maxlen=self._window))
        ms = seconds * 1000
        window.requests += 1
        window.latencies_ms.append(ms)
        self._all.append(ms)
        self._total += 1
        if status >= 400:
            window.errors += 1
            self._errors += 1
        if status == 401:
            self._auth_failures.inc()
            self._auth_failure_count += 1
        if tenant is not None:
            windows = self._tenants.get(tenant)
            if windows is None:
                windows = self._tenants[tenant] = _TenantWindows(self._window)
            windows.add(route, ms, status >= 400)

    def event(self, name: str, target: str, **fields: object) -> None:
        """An operational decision (retry, failover, circuit open/closed): counted, and
        logged with its fields. ``target`` is an upstream URL or a model name."""
        self._events.labels(name, target).inc()
        events_log.warning(name, target=target, **fields)

    def dependency(self, service: str, up: bool) -> None:
        self._dependency_up.labels(service).set(1 if up else 0)

    def record_stage(self, stage: str, seconds: float) -> None:
        """A unified chat stage's time (embedding, memory_retrieval, ...)."""
        self._stages.labels(stage).observe(seconds)
        window = self._stage_windows.get(stage)
        if window is None:
            window = self._stage_windows[stage] = deque(maxlen=self._window)
        window.append(seconds * 1000)

    def tenant_snapshot(self, tenant: str) -> dict[str, Any]:
        """``snapshot()``'s shape with one tenant's requests only: no other tenant's
        counts, no refused keys (they have no tenant); the stage timings are shared."""
        windows = self._tenants.get(tenant) or _TenantWindows(self._window)
        total = windows.total.summary()
        return {
            "uptime_s": round(time.monotonic() - self._started, 3),
            **total,
            "auth_failures": 0,
            "routes": {route: w.summary() for route, w in sorted(windows.routes.items())},
            "stages": self._stage_summaries(),
        }

    def _stage_summaries(self) -> dict[str, Any]:
        return {
            stage: summarize(list(window)) for stage, window in sorted(self._stage_windows.items())
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.monotonic() - self._started, 3),
            "requests": self._total,
            "errors": self._errors,
            "auth_failures": self._auth_failure_count,
            "latency": summarize(list(self._all)),
            "routes": {route: w.summary() for route, w in sorted(self._routes.items())},
            "stages": self._stage_summaries(),
        }

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

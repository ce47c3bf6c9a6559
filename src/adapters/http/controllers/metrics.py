"""``GET /metrics``: JSON by default; Prometheus text with ``Accept: text/plain`` or
``?format=prometheus``. An admin key sees every tenant's requests; any other key sees
its own tenant's, in JSON only (the Prometheus series count every tenant)."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, Response, get

from adapters.http.auth import requires
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import MetricsResponse
from adapters.telemetry.metrics import PROMETHEUS_CONTENT_TYPE, RequestMetrics
from application.check_health import CheckHealth
from domain.errors import PermissionDenied
from domain.health import Status
from domain.principal import Capability, Principal, Tier


def _wants_prometheus(request: Request[Any, Any, Any], format: str | None) -> bool:
    if format is not None:
        return format == "prometheus"
    accept = request.headers.get("accept", "")
    return "text/plain" in accept or "openmetrics" in accept


class MetricsController(Controller):
    path = "/metrics"
    tags = ["observability"]
    guards = [requires(Capability.READ_METRICS), admitted]

    @get(
        "",
        summary="Request counts, errors and latency percentiles",
        responses=error_responses(401, 403),
    )
    async def metrics(
        self,
        request: Request[Any, Any, Any],
        request_metrics: RequestMetrics,
        check_health: CheckHealth,
        format: Literal["json", "prometheus"] | None = None,
    ) -> Response[MetricsResponse]:
        principal: Principal = request.user
        every_tenant = principal.tier >= Tier.ADMIN
        if _wants_prometheus(request, format):
            if not every_tenant:
                raise PermissionDenied(
                    "the Prometheus series count every tenant's requests: they need an admin "
                    "key; the JSON metrics show this key's tenant"
                )
            # A scrape refreshes the dependency gauges (alerting on a dependency down).
            for service in (await check_health()).services:
                request_metrics.dependency(service.name, service.status is not Status.UNHEALTHY)
            return Response(request_metrics.prometheus(), media_type=PROMETHEUS_CONTENT_TYPE)  # type: ignore[arg-type]
        if every_tenant:
            return Response(request_metrics.snapshot())  # type: ignore[arg-type]
        return Response(request_metrics.tenant_snapshot(principal.tenant))  # type: ignore[arg-type]

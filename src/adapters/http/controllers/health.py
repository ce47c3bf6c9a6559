"""``GET /health`` (and ``/health/live``, ``/health/ready``): no key needed."""

from __future__ import annotations

from litestar import Controller, Response, get

from adapters.http.wire import HealthResponse, ServiceStatus
from application.check_health import CheckHealth
from domain.health import HealthReport, Status


def _wire(report: HealthReport) -> HealthResponse:
    return HealthResponse(
        status=report.status.value,
        version=report.version,
        services={
            s.name: ServiceStatus(status=s.status.value, latency_ms=s.latency_ms, detail=s.detail)
            for s in report.services
        },
    )


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("", summary="Gateway and dependency health (503 when inference is unusable)")
    async def health(self, check_health: CheckHealth) -> Response[HealthResponse]:
        report = await check_health()
        status = 503 if report.status is Status.UNHEALTHY else 200
        return Response(_wire(report), status_code=status)

    @get("/live", summary="Liveness: the process answers")
    async def live(self) -> dict[str, str]:
        return {"status": "alive"}

    @get("/ready", summary="Readiness: inference is usable (503 otherwise)")
    async def ready(self, check_health: CheckHealth) -> Response[dict[str, str]]:
        report = await check_health()
        if report.status is Status.UNHEALTHY:
            return Response({"status": "not_ready"}, status_code=503)
        return Response({"status": "ready"})

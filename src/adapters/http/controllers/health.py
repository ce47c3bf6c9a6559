"""``GET /health`` (and ``/health/live``, ``/health/ready``): no key needed. Without an
admin key each dependency is only up or down; an admin key also gets the details
(which upstream, why it is down, when its circuit is retried)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get

from adapters.http.services import Services
from adapters.http.wire import HealthResponse, ServiceStatus
from domain.health import HealthReport, Status
from domain.principal import Tier


def _wire(report: HealthReport) -> HealthResponse:
    return HealthResponse(
        status=report.status.value,
        version=report.version,
        services={
            s.name: ServiceStatus(status=s.status.value, latency_ms=s.latency_ms, detail=s.detail)
            for s in report.services
        },
    )


async def _is_admin(request: Request[Any, Any, Any], services: Services) -> bool:
    """An admin key in ``Authorization`` (the route is public: an absent, malformed or
    unknown key is just not an admin)."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return False
    principal = await services.key_management.authenticate(secret.strip())
    return principal is not None and principal.tier >= Tier.ADMIN


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get(
        "",
        summary="Gateway and dependency health (503 when inference is unusable)",
        description=(
            "Each dependency's status; `detail` (why it is not healthy) only with an admin key."
        ),
    )
    async def health(
        self, request: Request[Any, Any, Any], services: Services
    ) -> Response[HealthResponse]:
        report = await services.check_health()
        status = 503 if report.status is Status.UNHEALTHY else 200
        shown = report if await _is_admin(request, services) else report.public()
        return Response(_wire(shown), status_code=status)

    @get("/live", summary="Liveness: the process answers")
    async def live(self) -> dict[str, str]:
        return {"status": "alive"}

    @get("/ready", summary="Readiness: inference is usable (503 otherwise)")
    async def ready(self, services: Services) -> Response[dict[str, str]]:
        report = await services.check_health()
        if not report.ready:
            return Response({"status": "not_ready"}, status_code=503)
        return Response({"status": "ready"})

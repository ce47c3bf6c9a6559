"""Health of the gateway and of each service it depends on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum


class Status(Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    name: str
    status: Status
    latency_ms: float
    detail: str | None = None
    # Every critical service down makes the gateway unhealthy (inference); any other makes
    # it degraded (retrieval can be skipped, the answer still comes).
    critical: bool = False


@dataclass(frozen=True, slots=True)
class HealthReport:
    services: Sequence[ServiceHealth]
    version: str

    @property
    def status(self) -> Status:
        critical = [s for s in self.services if s.critical]
        if critical and all(s.status is Status.UNHEALTHY for s in critical):
            return Status.UNHEALTHY
        if any(s.status is not Status.HEALTHY for s in self.services):
            return Status.DEGRADED
        return Status.HEALTHY

    @property
    def ready(self) -> bool:
        """Can a chat be served now: some inference service healthy (not down, its
        circuit not open)."""
        critical = [s for s in self.services if s.critical]
        return not critical or any(s.status is Status.HEALTHY for s in critical)

    def public(self) -> HealthReport:
        """What anyone may read: each service up or down, no detail (hosts, ports,
        error text are for admins)."""
        return HealthReport([replace(s, detail=None) for s in self.services], self.version)

"""Health of the gateway and of each service it depends on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

"""Anything whose health ``/health`` reports."""

from __future__ import annotations

from typing import Protocol

from domain.health import ServiceHealth


class HealthProbe(Protocol):
    async def check(self) -> ServiceHealth:
        """Probe the service now; never raises (a failure is an UNHEALTHY result)."""
        ...

"""The gateway's health: every dependency probed concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from domain.health import HealthReport
from ports.health import HealthProbe


class CheckHealth:
    def __init__(self, probes: Sequence[HealthProbe], version: str) -> None:
        self._probes = probes
        self._version = version

    async def __call__(self) -> HealthReport:
        results = await asyncio.gather(*(p.check() for p in self._probes))
        return HealthReport(services=results, version=self._version)

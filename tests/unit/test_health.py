"""The gateway's health from its services' health."""

from __future__ import annotations

import asyncio

import pytest

from application.check_health import CheckHealth
from domain.errors import UpstreamUnavailable
from domain.health import HealthReport, ServiceHealth, Status
from tests.fakes.fake_chat_model import FakeChatModel

UP, DOWN = Status.HEALTHY, Status.UNHEALTHY


def service(name: str, status: Status, *, critical: bool) -> ServiceHealth:
    return ServiceHealth(name, status, 1.0, critical=critical)


def report(*services: ServiceHealth) -> HealthReport:
    return HealthReport(services=services, version="test")


def test_all_healthy_is_healthy() -> None:
    health = report(service("llm", UP, critical=True), service("vectors", UP, critical=False))

    assert health.status is Status.HEALTHY


def test_no_services_is_healthy() -> None:
    assert report().status is Status.HEALTHY


@pytest.mark.parametrize("status", [Status.UNHEALTHY, Status.DEGRADED])
def test_a_non_critical_service_not_healthy_degrades(status: Status) -> None:
    health = report(service("llm", UP, critical=True), service("vectors", status, critical=False))

    assert health.status is Status.DEGRADED


def test_one_of_two_critical_services_down_degrades() -> None:
    health = report(service("llm-1", UP, critical=True), service("llm-2", DOWN, critical=True))

    assert health.status is Status.DEGRADED


def test_every_critical_service_down_is_unhealthy() -> None:
    health = report(
        service("llm-1", DOWN, critical=True),
        service("llm-2", DOWN, critical=True),
        service("vectors", UP, critical=False),
    )

    assert health.status is Status.UNHEALTHY


def test_a_critical_service_only_degraded_is_not_unhealthy() -> None:
    health = report(service("llm", Status.DEGRADED, critical=True))

    assert health.status is Status.DEGRADED


def test_non_critical_services_all_down_only_degrade() -> None:
    health = report(
        service("vectors", DOWN, critical=False), service("redis", DOWN, critical=False)
    )

    assert health.status is Status.DEGRADED


async def test_check_health_reports_every_probe_in_order_with_the_version() -> None:
    up = FakeChatModel("a", health_name="llm_a")
    down = FakeChatModel("b", health_name="llm_b")
    down.failure = UpstreamUnavailable("b is unreachable")

    health = await CheckHealth([up, down], version="1.2.3")()

    assert health.version == "1.2.3"
    assert [(s.name, s.status) for s in health.services] == [("llm_a", UP), ("llm_b", DOWN)]
    assert health.services[1].detail == "b is unreachable"
    assert health.status is Status.DEGRADED


class RendezvousProbe:
    """Healthy only once every probe of the group has started: sequential probing
    would wait forever on the first one."""

    def __init__(self, name: str, arrived: list[str], group: int, everyone: asyncio.Event):
        self.name, self._arrived, self._group, self._everyone = name, arrived, group, everyone

    async def check(self) -> ServiceHealth:
        self._arrived.append(self.name)
        if len(self._arrived) == self._group:
            self._everyone.set()
        await self._everyone.wait()
        return service(self.name, UP, critical=True)


async def test_check_health_probes_concurrently() -> None:
    arrived: list[str] = []
    everyone = asyncio.Event()
    probes = [RendezvousProbe(n, arrived, 3, everyone) for n in ("a", "b", "c")]

    # The timeout only turns a hang (probes run one after another) into a failure.
    health = await asyncio.wait_for(CheckHealth(probes, version="v")(), timeout=5)

    assert [s.name for s in health.services] == ["a", "b", "c"]


def test_ready_needs_one_inference_service_healthy() -> None:
    circuit_open = ServiceHealth("llm", Status.DEGRADED, 1.0, "circuit open", critical=True)
    assert not report(circuit_open, service("vectors", UP, critical=False)).ready
    assert report(circuit_open, service("llm2", UP, critical=True)).ready
    assert report(service("llm", UP, critical=True), service("vectors", DOWN, critical=False)).ready


def test_the_public_report_has_no_detail() -> None:
    down = ServiceHealth("llm", DOWN, 1.0, "http://10.0.0.5:8000 refused", critical=True)
    public = report(down).public()
    assert [s.detail for s in public.services] == [None]
    assert public.status is DOWN

"""``Resilience``'s decisions over fakes: what is retried and for how long, and what each
outcome does to the circuit."""

from __future__ import annotations

import pytest

from adapters.inference.resilience import Resilience
from adapters.inference.resilient_chat_model import CHAT_VERDICTS
from adapters.inference.transport_errors import RetryableOverloaded, RetryableUnavailable
from domain.circuit import CircuitBreaker, CircuitState
from domain.errors import UpstreamOverloaded, UpstreamRejected, UpstreamUnavailable
from tests.fakes.fake_clock import FakeClock


class Attempts:
    """Fails with ``errors`` in turn, then answers ``"ok"``; counts the calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def resilience(
    retries: int, retry_budget_s: float = 10.0
) -> tuple[Resilience, CircuitBreaker, FakeClock]:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10)
    built = Resilience(
        "up",
        CHAT_VERDICTS,
        breaker=breaker,
        retries=retries,
        retry_budget_s=retry_budget_s,
        monotonic=clock.monotonic,
    )
    return built, breaker, clock


async def test_a_retryable_failure_is_sent_again_and_the_success_counts() -> None:
    run, breaker, _ = resilience(retries=2)
    attempts = Attempts(RetryableUnavailable("refused"))
    assert await run.run(attempts) == "ok"
    assert attempts.calls == 2
    assert breaker.failures == 0


async def test_a_retry_after_past_the_budget_is_not_waited_for() -> None:
    run, breaker, _ = resilience(retries=2, retry_budget_s=1.0)
    attempts = Attempts(RetryableOverloaded("busy", retry_after_s=5.0))
    with pytest.raises(RetryableOverloaded):
        await run.run(attempts)
    assert attempts.calls == 1
    assert breaker.failures == 1, "the upstream's own 429/503 counts against it"


async def test_a_failure_not_safe_to_repeat_is_not_retried() -> None:
    run, breaker, _ = resilience(retries=2)
    attempts = Attempts(UpstreamUnavailable("dropped mid-answer"))
    with pytest.raises(UpstreamUnavailable):
        await run.run(attempts)
    assert attempts.calls == 1
    assert breaker.failures == 1


async def test_a_rejected_request_proves_the_upstream_works() -> None:
    run, breaker, _ = resilience(retries=0)
    for _ in range(3):
        with pytest.raises(UpstreamRejected):
            await run.run(Attempts(UpstreamRejected("bad role", status=400)))
    assert breaker.state is CircuitState.CLOSED


async def test_the_circuit_refuses_until_its_cooldown_then_lets_one_probe() -> None:
    run, breaker, clock = resilience(retries=0)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await run.run(Attempts(UpstreamUnavailable("down")))
    assert not run.accepting
    untried = Attempts()
    with pytest.raises(UpstreamOverloaded, match="circuit is open"):
        await run.run(untried)
    assert untried.calls == 0

    clock.advance(10)
    assert run.accepting
    assert await run.run(Attempts()) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_a_probe_that_ends_with_no_verdict_lets_the_next_request_probe() -> None:
    """A full queue or a caller gone says nothing of the upstream: the half-open circuit
    must not stay taken by a probe that never reported."""
    run, breaker, clock = resilience(retries=0)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await run.run(Attempts(UpstreamUnavailable("down")))
    clock.advance(10)
    with pytest.raises(UpstreamOverloaded, match="busy"):
        await run.run(Attempts(UpstreamOverloaded("inference upstream up is busy")))
    assert breaker.state is CircuitState.HALF_OPEN
    assert await run.run(Attempts()) == "ok"
    assert breaker.state is CircuitState.CLOSED

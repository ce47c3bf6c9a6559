"""The circuit breaker's states, with explicit times."""

from __future__ import annotations

from domain.circuit import CircuitBreaker, CircuitState


def test_opens_after_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10)
    for _ in range(2):
        breaker.record_failure(now=0)
    assert breaker.allows(now=0)
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure(now=0)
    assert breaker.state is CircuitState.CLOSED, "a success resets the count"
    breaker.record_failure(now=1)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allows(now=5)
    assert not breaker.would_allow(now=5)


def test_half_open_lets_one_probe_through() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10)
    breaker.record_failure(now=0)
    assert breaker.would_allow(now=10)
    assert breaker.allows(now=10)
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allows(now=10), "one probe at a time"
    assert not breaker.would_allow(now=10)


def test_a_failed_probe_reopens_and_a_good_one_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10)
    breaker.record_failure(now=0)
    assert breaker.allows(now=10)
    assert breaker.record_failure(now=10) is CircuitState.OPEN
    assert not breaker.allows(now=15)
    assert breaker.allows(now=20)
    assert breaker.record_success() is CircuitState.CLOSED
    assert breaker.allows(now=20)


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10)
    breaker.record_failure(now=0)
    assert breaker.allows(now=10)
    assert not breaker.allows(now=10)
    breaker.abandon_probe()
    assert breaker.allows(now=10)
    assert breaker.state is CircuitState.HALF_OPEN

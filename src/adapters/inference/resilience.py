"""Retries and a circuit breaker around a model server's port: what keeps a server that
fails from failing every request after it, written once for every port
(``ResilientChatModel``, ``ResilientEmbedder``) whatever adapter is inside."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypedDict, TypeVar, Unpack

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from adapters.inference.transport_errors import Retryable
from domain.circuit import CircuitBreaker, CircuitState
from domain.errors import GatewayError
from domain.health import ServiceHealth, Status
from ports.telemetry import Telemetry

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verdicts:
    """How a port's errors count for its server's circuit: ``failures`` count against
    it; ``answered`` prove that it works (it answered, refusing this request);
    ``refused`` is raised while the circuit is open. Anything else (a full queue, a
    caller gone) says nothing of the server. ``server``: what the port calls it."""

    server: str
    failures: tuple[type[BaseException], ...]
    answered: tuple[type[BaseException], ...]
    refused: type[GatewayError]


class ResilienceOptions(TypedDict, total=False):
    """``Resilience``'s options, as the wrappers around a port take them."""

    breaker: CircuitBreaker | None
    retries: int
    retry_budget_s: float
    telemetry: Telemetry | None
    monotonic: Callable[[], float]


def _backoff(attempt_number: int, error: BaseException | None) -> float:
    backoff = min(0.1 * 2.0 ** (attempt_number - 1), 2.0)
    asked = float(getattr(error, "retry_after_s", None) or 0.0)
    return max(backoff, asked)


class Resilience:
    """Retries only what is safe to send again (a ``Retryable`` error: nothing was
    done), honouring Retry-After, ``retries`` times (2) within ``retry_budget_s`` (10);
    the ``breaker`` (when given) refuses at once a server that keeps failing.
    ``telemetry`` hears of each retry and each change of the circuit, under ``name``."""

    def __init__(self, name: str, verdicts: Verdicts, **options: Unpack[ResilienceOptions]) -> None:
        self.name = name
        self.breaker = options.get("breaker")
        self._verdicts = verdicts
        self._retries = options.get("retries", 2)
        self._retry_budget_s = options.get("retry_budget_s", 10.0)
        self._telemetry = options.get("telemetry")
        self._monotonic = options.get("monotonic", time.monotonic)

    @property
    def accepting(self) -> bool:
        """False while the circuit is open."""
        return self.breaker is None or self.breaker.would_allow(self._monotonic())

    def _event(self, name: str, **fields: object) -> None:
        if self._telemetry is not None:
            self._telemetry.event(name, self.name, **fields)

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        breaker = self.breaker
        if breaker is not None and not breaker.allows(self._monotonic()):
            self._event("circuit_refused")
            raise self._verdicts.refused(
                f"{self._verdicts.server} {self.name} is failing; its circuit is open, "
                f"retry in {breaker.cooldown_s:.0f} s"
            )
        started = self._monotonic()
        try:
            # The common case pays for no retry machinery: tenacity only after a
            # retryable failure (measured: a quarter of a request's CPU otherwise).
            try:
                result: T = await attempt()
            except Retryable as first:
                pause = _backoff(1, first)
                budget = self._retry_budget_s - (self._monotonic() - started)
                if not self._retries or pause >= budget:
                    raise
                self._event("retry", attempt=1, reason=str(first))
                await asyncio.sleep(pause)
                result = await self._retry(attempt, budget - pause)
        except self._verdicts.failures as exc:
            if isinstance(exc, self._verdicts.answered):
                self._record_success()
            elif breaker is not None:
                was = breaker.state
                if breaker.record_failure(self._monotonic()) is CircuitState.OPEN and (
                    was is not CircuitState.OPEN
                ):
                    self._event("circuit_open", reason=str(exc))
            raise
        except self._verdicts.answered:
            self._record_success()
            raise
        except BaseException:
            # Neither verdict: a half-open circuit lets the next request probe instead.
            if breaker is not None:
                breaker.abandon_probe()
            raise
        self._record_success()
        return result

    def _record_success(self) -> None:
        breaker = self.breaker
        if breaker is None:
            return
        was = breaker.state
        breaker.record_success()
        if was is not CircuitState.CLOSED:
            self._event("circuit_closed")

    async def _retry(self, attempt: Callable[[], Awaitable[T]], budget_s: float) -> T:
        """Attempts 2 and on (the first failed already), within what is left of the budget."""

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self._event("retry", attempt=state.attempt_number + 1, reason=str(error))

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return _backoff(state.attempt_number + 1, error)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            stop=stop_after_attempt(self._retries) | stop_before_delay(budget_s),
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        )

        # tenacity awaits coroutine functions only (not a lambda returning one).
        async def once() -> T:
            return await attempt()

        result: T = await retrying(once)
        return result

    def health(self, health: ServiceHealth) -> ServiceHealth:
        """The server's own health, degraded while its circuit is not closed: it answers
        its health check but failed requests, which are refused until it is retried."""
        breaker = self.breaker
        if health.status is not Status.HEALTHY or breaker is None:
            return health
        if breaker.state is CircuitState.CLOSED:
            return health
        retry_in = breaker.opened_at + breaker.cooldown_s - self._monotonic()
        when = f"retried in {retry_in:.1f} s" if retry_in > 0 else "the next request probes it"
        return ServiceHealth(
            health.name,
            Status.DEGRADED,
            health.latency_ms,
            f"circuit open for {self._verdicts.server} {self.name} after "
            f"{breaker.failures} failure(s): requests refused; {when}",
            critical=health.critical,
        )

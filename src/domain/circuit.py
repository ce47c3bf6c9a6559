"""A circuit breaker per upstream: stop sending to an upstream that keeps failing, try
it again after a cool-down, close when a probe succeeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class CircuitState(Enum):
    CLOSED = "closed"  # requests flow
    OPEN = "open"  # refused at once until the cool-down ends
    HALF_OPEN = "half_open"  # one probe request is let through


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown_s: float = 10.0
    state: CircuitState = field(default=CircuitState.CLOSED, init=False)
    failures: int = field(default=0, init=False)
    opened_at: float = field(default=0.0, init=False)
    _probing: bool = field(default=False, init=False)

    def allows(self, now: float) -> bool:
        """May a request go now? In half-open state only one probe at a time."""
        if self.state is CircuitState.OPEN and now - self.opened_at >= self.cooldown_s:
            self.state = CircuitState.HALF_OPEN
            self._probing = False
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def would_allow(self, now: float) -> bool:
        """``allows`` without taking the probe: for choosing among upstreams."""
        if self.state is CircuitState.OPEN:
            return now - self.opened_at >= self.cooldown_s
        return not (self.state is CircuitState.HALF_OPEN and self._probing)

    def record_success(self) -> CircuitState:
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._probing = False
        return self.state

    def record_failure(self, now: float) -> CircuitState:
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = CircuitState.OPEN
            self.opened_at = now
            self._probing = False
        return self.state

    def abandon_probe(self) -> None:
        """The half-open probe ended with no verdict on the upstream: the next request
        may probe instead (else the circuit would refuse for good)."""
        self._probing = False

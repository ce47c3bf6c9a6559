"""``FakeRateLimiter``: the RateLimiter port as plain dicts a test can read and change.

The same token buckets as the real adapters (capacity = the per-minute limit, refilled
evenly over a minute, all or nothing), written out plainly. ``admissions`` records every
decision as ``(key_id, tokens, Admission)``, ``reconciled`` every ``(key_id, delta)``;
``levels[key_id]`` is ``[requests, tokens, updated_at]``. Set ``down`` to make every call
fail with ``BackendUnavailable``."""

from __future__ import annotations

import math

from domain.errors import BackendUnavailable
from domain.health import ServiceHealth, Status
from domain.limits import Admission, RateLimit

MINUTE_S = 60.0


class FakeRateLimiter:
    def __init__(self) -> None:
        self.levels: dict[str, list[float]] = {}
        self.admissions: list[tuple[str, int, Admission]] = []
        self.reconciled: list[tuple[str, int]] = []
        self.down = False

    def _available(self) -> None:
        if self.down:
            raise BackendUnavailable("the fake rate limiter is down")

    def _refilled(self, key_id: str, limit: RateLimit, now: float) -> list[float]:
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        requests, tokens, updated_at = self.levels.get(key_id, [rpm, tpm, now])
        elapsed = max(0.0, now - updated_at)
        return [
            min(rpm, requests + elapsed * rpm / MINUTE_S),
            min(tpm, tokens + elapsed * tpm / MINUTE_S),
            max(now, updated_at),
        ]

    async def admit(self, key_id: str, limit: RateLimit, tokens: int, now: float) -> Admission:
        self._available()
        tokens = max(0, tokens)
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        requests_left, tokens_left, updated_at = self._refilled(key_id, limit, now)
        allowed = requests_left >= 1 and tokens_left >= tokens
        if allowed:
            requests_left, tokens_left = requests_left - 1, tokens_left - tokens
        self.levels[key_id] = [requests_left, tokens_left, updated_at]

        def seconds_for(level: float, capacity: int, need: int) -> float:
            if need > capacity:
                return MINUTE_S
            return max(0.0, (need - level) * MINUTE_S / capacity)

        retry = 0.0
        if not allowed:
            retry = max(seconds_for(requests_left, rpm, 1), seconds_for(tokens_left, tpm, tokens))
        decision = Admission(
            allowed=allowed,
            limit_requests=rpm,
            remaining_requests=max(0, math.floor(requests_left)),
            reset_requests_s=seconds_for(requests_left, rpm, rpm) if rpm > 0 else 0.0,
            limit_tokens=tpm,
            remaining_tokens=max(0, math.floor(tokens_left)),
            reset_tokens_s=seconds_for(tokens_left, tpm, tpm) if tpm > 0 else 0.0,
            retry_after_s=retry,
        )
        self.admissions.append((key_id, tokens, decision))
        return decision

    async def reconcile(self, key_id: str, limit: RateLimit, delta_tokens: int, now: float) -> None:
        self._available()
        requests_left, tokens_left, updated_at = self._refilled(key_id, limit, now)
        tokens_left = min(limit.tokens_per_minute, tokens_left - delta_tokens)
        self.levels[key_id] = [requests_left, tokens_left, updated_at]
        self.reconciled.append((key_id, delta_tokens))

    async def check(self) -> ServiceHealth:
        status = Status.UNHEALTHY if self.down else Status.HEALTHY
        return ServiceHealth("rate_limiter", status, 0.0)

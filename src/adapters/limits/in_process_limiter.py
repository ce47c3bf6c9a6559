"""``InProcessRateLimiter``: the embedded default, two token buckets per key in a dict.

The bucket arithmetic here (``refill``, ``time_to_full``, ``admission``) is also how
``RedisRateLimiter`` reads its Lua script's answer: one algorithm, two stores."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from domain.health import ServiceHealth, Status
from domain.limits import Admission, RateLimit

MINUTE_S = 60.0


def refill(level: float, capacity: int, elapsed_s: float) -> float:
    """A bucket's level after ``elapsed_s``: ``capacity`` per minute, never above it.
    (The Lua script does the same operations in the same order, so both stores reach
    the same floats.)"""
    return min(capacity, level + elapsed_s * capacity / MINUTE_S)


def time_to_full(level: float, capacity: int) -> float:
    if capacity <= 0:
        return 0.0
    return max(0.0, (capacity - level) * MINUTE_S / capacity)


def _wait(level: float, capacity: int, need: int) -> float:
    if need > capacity:
        return MINUTE_S  # it can never fit; the caller says why
    return max(0.0, (need - level) * MINUTE_S / capacity)


def admission(
    limit: RateLimit, requests: float, tokens: float, asked_tokens: int, allowed: bool
) -> Admission:
    """The decision as the headers report it, from both levels after the decision
    (``requests``/``tokens`` may be negative after a reconcile: remaining is 0 then)."""
    rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
    retry = 0.0
    if not allowed:
        retry = max(_wait(requests, rpm, 1), _wait(tokens, tpm, asked_tokens))
    return Admission(
        allowed=allowed,
        limit_requests=rpm,
        remaining_requests=max(0, math.floor(requests)),
        reset_requests_s=time_to_full(requests, rpm),
        limit_tokens=tpm,
        remaining_tokens=max(0, math.floor(tokens)),
        reset_tokens_s=time_to_full(tokens, tpm),
        retry_after_s=retry,
    )


@dataclass(slots=True)
class _Buckets:
    requests: float
    tokens: float
    updated_at: float
    full_at: float  # from then on the state is what a new key starts with: evictable


class InProcessRateLimiter:
    """Per process: N gateway instances admit up to N times the limit (use
    ``RedisRateLimiter`` for a shared limit). Memory is bounded: a key's buckets are
    dropped once they are full again (checked on the least recently used few at every
    call, O(1)), and beyond ``max_keys`` the least recently used are dropped even if not
    full (that key is then briefly more lenient; the bound wins)."""

    def __init__(self, *, max_keys: int = 100_000, health_name: str = "rate_limiter") -> None:
        self.max_keys = max_keys
        self.health_name = health_name
        self._buckets: OrderedDict[str, _Buckets] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def admit(self, key_id: str, limit: RateLimit, tokens: int, now: float) -> Admission:
        tokens = max(0, tokens)
        buckets = self._refilled(key_id, limit, now)
        # No await between reading and taking: atomic on the event loop.
        allowed = buckets.requests >= 1 and buckets.tokens >= tokens
        if allowed:
            buckets.requests -= 1
            buckets.tokens -= tokens
        self._stored(key_id, buckets, limit)
        return admission(limit, buckets.requests, buckets.tokens, tokens, allowed)

    async def reconcile(self, key_id: str, limit: RateLimit, delta_tokens: int, now: float) -> None:
        buckets = self._refilled(key_id, limit, now)
        buckets.tokens = min(limit.tokens_per_minute, buckets.tokens - delta_tokens)
        self._stored(key_id, buckets, limit)

    async def check(self) -> ServiceHealth:
        return ServiceHealth(self.health_name, Status.HEALTHY, 0.0)

    def _refilled(self, key_id: str, limit: RateLimit, now: float) -> _Buckets:
        buckets = self._buckets.get(key_id)
        if buckets is None:
            rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
            return _Buckets(rpm, tpm, now, now)
        # A caller's clock that goes back refills nothing (and does not move time back).
        elapsed = max(0.0, now - buckets.updated_at)
        buckets.requests = refill(buckets.requests, limit.requests_per_minute, elapsed)
        buckets.tokens = refill(buckets.tokens, limit.tokens_per_minute, elapsed)
        buckets.updated_at = max(now, buckets.updated_at)
        return buckets

    def _stored(self, key_id: str, buckets: _Buckets, limit: RateLimit) -> None:
        buckets.full_at = buckets.updated_at + max(
            time_to_full(buckets.requests, limit.requests_per_minute),
            time_to_full(buckets.tokens, limit.tokens_per_minute),
        )
        self._buckets[key_id] = buckets
        self._buckets.move_to_end(key_id)
        self._evict(buckets.updated_at)

    def _evict(self, now: float) -> None:
        for _ in range(2):  # the two least recently used, if full again: O(1) a call
            oldest_key, oldest = next(iter(self._buckets.items()))
            if oldest.full_at > now:
                break
            del self._buckets[oldest_key]  # full is what a new key starts with
            if not self._buckets:
                return
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

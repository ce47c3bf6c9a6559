"""The rate-limit port: admission by token buckets, shared by every gateway instance
where the adapter is (Redis)."""

from __future__ import annotations

from typing import Protocol

from domain.health import ServiceHealth
from domain.limits import Admission, RateLimit


class RateLimiter(Protocol):
    """Two token buckets per key (requests and tokens), each refilling its per-minute
    limit evenly over a minute. ``admit`` is atomic: it takes one request and
    ``tokens`` tokens from both buckets, or from neither (denied), so N instances
    sharing one store admit no more than the limit in total.

    Errors: ``domain.errors.BackendUnavailable`` when the store cannot answer."""

    async def admit(self, key_id: str, limit: RateLimit, tokens: int, now: float) -> Admission: ...

    async def reconcile(self, key_id: str, limit: RateLimit, delta_tokens: int, now: float) -> None:
        """After the response: give back (negative delta) or take (positive) the
        difference between the admission's estimate and the real usage."""
        ...

    async def check(self) -> ServiceHealth: ...

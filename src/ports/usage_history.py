"""The usage-history port: per key, requests and tokens over time (``domain.usage``)."""

from __future__ import annotations

from typing import Protocol

from domain.health import ServiceHealth
from domain.usage import UsageSeries, UsageWindow


class UsageHistory(Protocol):
    """Counts per key in the buckets of every ``UsageWindow``; a bucket is forgotten once
    it left its window (storage stays bounded whatever the traffic). Shared by every
    gateway instance where the adapter is (Redis): a record may reach the other
    instances about a second later (it is buffered); ``series`` on the instance that
    recorded it counts it at once.

    Errors: ``domain.errors.BackendUnavailable`` when the store cannot answer."""

    async def record(self, key_id: str, requests: int, tokens: int, now: float) -> None:
        """Add ``requests`` and ``tokens`` (negative: taken back) to the buckets holding
        ``now``."""
        ...

    async def series(self, key_id: str, window: UsageWindow, now: float) -> UsageSeries:
        """The key's buckets in ``window`` ending at ``now`` (zeros where nothing was
        recorded, an unknown key included)."""
        ...

    async def check(self) -> ServiceHealth: ...

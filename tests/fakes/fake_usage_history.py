"""``FakeUsageHistory``: the UsageHistory port as a list a test can read.

``records`` holds every ``(key_id, requests, tokens, now)``; the series adds them up into
the window's buckets. Set ``down`` to make every call fail with ``BackendUnavailable``."""

from __future__ import annotations

from domain.errors import BackendUnavailable
from domain.health import ServiceHealth, Status
from domain.usage import UsageSeries, UsageWindow, series_from


class FakeUsageHistory:
    def __init__(self) -> None:
        self.records: list[tuple[str, int, int, float]] = []
        self.down = False

    def _available(self) -> None:
        if self.down:
            raise BackendUnavailable("the fake usage history is down")

    async def record(self, key_id: str, requests: int, tokens: int, now: float) -> None:
        self._available()
        self.records.append((key_id, requests, tokens, now))

    async def series(self, key_id: str, window: UsageWindow, now: float) -> UsageSeries:
        self._available()
        counts: dict[int, tuple[int, int]] = {}
        for key, requests, tokens, at in self.records:
            if key == key_id and at <= now:
                start = window.bucket_start(at)
                r, t = counts.get(start, (0, 0))
                counts[start] = (r + requests, t + tokens)
        return series_from(key_id, window, now, counts)

    async def check(self) -> ServiceHealth:
        return ServiceHealth("usage_history", Status.HEALTHY, 0.0)

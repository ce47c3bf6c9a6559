"""``InProcessUsageHistory``: the embedded default, each key's buckets in a dict."""

from __future__ import annotations

from collections import OrderedDict

from domain.health import ServiceHealth, Status
from domain.usage import UsageSeries, UsageWindow, series_from

# window -> bucket start -> [requests, tokens]
_Buckets = dict[UsageWindow, dict[int, list[int]]]


class InProcessUsageHistory:
    """Per process: each instance counts what it admitted (use ``RedisUsageHistory`` for
    the total of N instances). Bounded: a key holds at most the buckets of its windows
    (older ones are dropped when it records), and beyond ``max_keys`` the least recently
    recorded key is forgotten."""

    def __init__(self, *, max_keys: int = 10_000, health_name: str = "usage_history") -> None:
        self.max_keys = max_keys
        self.health_name = health_name
        self._keys: OrderedDict[str, _Buckets] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def bucket_count(self, key_id: str) -> int:
        return sum(len(b) for b in self._keys.get(key_id, {}).values())

    async def record(self, key_id: str, requests: int, tokens: int, now: float) -> None:
        windows = self._keys.get(key_id)
        if windows is None:
            windows = self._keys[key_id] = {w: {} for w in UsageWindow}
        self._keys.move_to_end(key_id)
        for window, buckets in windows.items():
            counts = buckets.setdefault(window.bucket_start(now), [0, 0])
            counts[0] += requests
            counts[1] += tokens
            _forget_before(buckets, window.bucket_start(now) - window.retention_s)
            while len(buckets) > window.buckets + 1:  # out of order ones, if any
                del buckets[min(buckets)]
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    async def series(self, key_id: str, window: UsageWindow, now: float) -> UsageSeries:
        buckets = self._keys.get(key_id, {}).get(window, {})
        return series_from(key_id, window, now, {s: (c[0], c[1]) for s, c in buckets.items()})

    async def check(self) -> ServiceHealth:
        return ServiceHealth(self.health_name, Status.HEALTHY, 0.0)


def _forget_before(buckets: dict[int, list[int]], oldest: int) -> None:
    # Buckets are created in time order, so the stale ones come first: O(1) a call.
    while buckets:
        start = next(iter(buckets))
        if start > oldest:
            return
        del buckets[start]

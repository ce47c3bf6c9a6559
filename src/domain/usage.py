"""A key's usage over time: admitted requests and tokens spent, counted in time buckets.

Two windows, each with its own bucket size, kept for as long as the window is long (and
no longer: the history is bounded by construction):

- ``1h``: 60 buckets of one minute;
- ``24h``: 24 buckets of one hour.

A bucket is named by its start (epoch seconds, a multiple of its size, UTC). A window
ends with the bucket holding ``now`` (still filling) and goes back ``buckets - 1``
complete ones."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class UsageWindow(Enum):
    HOUR = "1h"
    DAY = "24h"

    @property
    def bucket_s(self) -> int:
        return 60 if self is UsageWindow.HOUR else 3600

    @property
    def buckets(self) -> int:
        return 60 if self is UsageWindow.HOUR else 24

    @property
    def retention_s(self) -> int:
        """How long a bucket is kept: the window and the bucket still filling."""
        return self.bucket_s * (self.buckets + 1)

    def bucket_start(self, now: float) -> int:
        return math.floor(now / self.bucket_s) * self.bucket_s

    def starts(self, now: float) -> list[int]:
        """The buckets' starts in this window ending at ``now``, oldest first."""
        last = self.bucket_start(now)
        return [last - (self.buckets - 1 - i) * self.bucket_s for i in range(self.buckets)]

    @classmethod
    def parse(cls, value: str) -> UsageWindow:
        for window in cls:
            if window.value == value:
                return window
        names = ", ".join(w.value for w in cls)
        raise ValueError(f"window is {value!r}; it must be one of {names}")


@dataclass(frozen=True, slots=True)
class UsageBucket:
    start: int  # epoch seconds
    requests: int = 0
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class UsageSeries:
    """A key's usage in a window: every bucket of it, empty ones included, oldest first."""

    key_id: str
    window: UsageWindow
    buckets: tuple[UsageBucket, ...]

    @property
    def requests(self) -> int:
        return sum(b.requests for b in self.buckets)

    @property
    def tokens(self) -> int:
        return sum(b.tokens for b in self.buckets)


def series_from(
    key_id: str, window: UsageWindow, now: float, counts: dict[int, tuple[int, int]]
) -> UsageSeries:
    """The window's buckets filled from ``counts`` (start -> (requests, tokens)); what
    ``counts`` holds outside the window is left out."""
    return UsageSeries(
        key_id,
        window,
        tuple(UsageBucket(s, *counts.get(s, (0, 0))) for s in window.starts(now)),
    )

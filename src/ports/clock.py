"""Time, injected so that use-cases can be tested with a fake clock."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and caches)."""
        ...

    def now(self) -> float:
        """Seconds since the epoch (for timestamps)."""
        ...

"""``FakeClock``: the Clock port, moved by hand."""

from __future__ import annotations


class FakeClock:
    """Starts at ``monotonic=0`` and a fixed epoch time; only ``advance`` moves it."""

    def __init__(self, monotonic: float = 0.0, now: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._now = now

    def monotonic(self) -> float:
        return self._monotonic

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        # A monotonic clock never goes back: refusing makes a wrong test fail loudly.
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self._monotonic += seconds
        self._now += seconds

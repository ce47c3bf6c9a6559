"""The latency budget of one ``/v1/chat`` request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_BUDGET_MS = 3000


@dataclass
class LatencyBudget:
    """``total_ms`` end to end. Embedding and retrieval must end by
    ``retrieval_share`` of it (generation needs the rest); generation itself is bounded
    by ``max_tokens`` and the upstream timeout, not cut by the budget. Each stage's
    elapsed time is recorded for the response's ``metadata``."""

    total_ms: float
    clock: Callable[[], float]  # monotonic seconds
    retrieval_share: float = 0.25
    started: float = field(init=False)
    timings_ms: dict[str, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed_ms(self) -> float:
        return (self.clock() - self.started) * 1000

    def remaining_s(self) -> float:
        return max(0.0, (self.total_ms - self.elapsed_ms()) / 1000)

    def retrieval_deadline_s(self) -> float:
        """Seconds left for embedding and retrieval from now."""
        return max(0.0, (self.total_ms * self.retrieval_share - self.elapsed_ms()) / 1000)

    def record(self, stage: str, elapsed_ms: float) -> None:
        self.timings_ms[stage] = round(elapsed_ms, 3)

    @property
    def within_budget(self) -> bool:
        return self.elapsed_ms() <= self.total_ms

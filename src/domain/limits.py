"""Rate limits and per-key policy: what a key may spend, and what admission decides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per key, per minute: requests, and tokens (prompt estimate + max_tokens)."""

    requests_per_minute: int
    tokens_per_minute: int


@dataclass(frozen=True, slots=True)
class Admission:
    """What the limiter decided, with what the ``x-ratelimit-*`` headers report.
    ``reset_*_s``: seconds until that budget is full again; ``retry_after_s``: until
    this request would be admitted (0 when it was)."""

    allowed: bool
    limit_requests: int
    remaining_requests: int
    reset_requests_s: float
    limit_tokens: int
    remaining_tokens: int
    reset_tokens_s: float
    retry_after_s: float = 0.0


class QuotaPeriod(Enum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """LiteLLM-style virtual-key policy: ``None`` means no restriction."""

    allowed_models: Sequence[str] | None = None
    max_tokens_cap: int | None = None
    token_quota: int | None = None
    quota_period: QuotaPeriod = QuotaPeriod.MONTH


@dataclass(frozen=True, slots=True)
class ManagedKey:
    """A key created through the API: stored by hash only, the secret shown once."""

    id: str
    name: str
    key_hash: str
    tier: str
    tenant: str
    created_at: float
    policy: KeyPolicy = field(default_factory=KeyPolicy)
    last_used_at: float | None = None
    revoked_at: float | None = None


def period_start(period: QuotaPeriod, now: float) -> str:
    """The quota period containing ``now`` (UTC), as a label: ``2026-11`` or ``2026-11-26``."""
    import time

    t = time.gmtime(now)
    if period is QuotaPeriod.DAY:
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return f"{t.tm_year:04d}-{t.tm_mon:02d}"

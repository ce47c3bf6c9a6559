"""Rate limits and per-key policy: what a key may spend, and what admission decides."""

from __future__ import annotations

import calendar
import math
import time
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

    @property
    def retry_after_whole_s(self) -> int:
        """``Retry-After``: whole seconds, at least one (what a refusal's message says)."""
        return max(1, math.ceil(self.retry_after_s))


def duration(seconds: float) -> str:
    """A duration as OpenAI writes resets: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class QuotaPeriod(Enum):
    DAY = "day"
    MONTH = "month"


class ContextUser(Enum):
    """Whose memories a request is, when no ``X-Gateway-User-Id`` says."""

    HEADER = "header"  # nobody's: only the header names a user
    KEY = "key"  # the key's own (one user per key, e.g. a developer's coding agent)
    REQUEST = "request"  # the body's ``user`` (Anthropic's ``metadata.user_id``)


@dataclass(frozen=True, slots=True)
class ContextDefaults:
    """Memory and RAG for a key's requests that do not ask with headers (headers
    override each one, off included). Off unless configured."""

    memory: bool = False
    rag: bool = False
    user_id_from: ContextUser = ContextUser.HEADER


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """LiteLLM-style virtual-key policy: ``None`` means no restriction."""

    allowed_models: Sequence[str] | None = None
    max_tokens_cap: int | None = None
    token_quota: int | None = None
    quota_period: QuotaPeriod = QuotaPeriod.MONTH
    context: ContextDefaults = field(default_factory=ContextDefaults)


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
    t = time.gmtime(now)
    if period is QuotaPeriod.DAY:
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return f"{t.tm_year:04d}-{t.tm_mon:02d}"


def period_end(period: QuotaPeriod, now: float) -> float:
    """When the quota period containing ``now`` ends (UTC midnight, epoch seconds)."""
    t = time.gmtime(now)
    if period is QuotaPeriod.DAY:
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return float(start + 86_400)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


@dataclass(frozen=True, slots=True)
class QuotaReservation:
    """A key's token quota after a reservation was asked for: ``reserved`` tells whether
    it was taken, ``used`` the period's total (with it, when taken)."""

    reserved: bool
    used: int
    quota: int
    resets_in_s: float

    @property
    def remaining(self) -> int:
        return max(0, self.quota - self.used)

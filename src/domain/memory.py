"""Per-user long-term memory: what was said, and how much it still matters."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from domain.errors import InvalidRequest

MEMORY_LIMIT_RANGE = (1, 20)
MAX_USER_ID = 256  # characters


@dataclass(frozen=True, slots=True)
class MemoryOwner:
    """Whose memories: one user of one tenant. Every memory operation is scoped to an
    owner, so a user never reaches another's. A user id is an opaque label (any text,
    never query syntax), bounded and never blank."""

    tenant: str
    user_id: str

    def __post_init__(self) -> None:
        if not self.user_id.strip() or len(self.user_id) > MAX_USER_ID:
            raise InvalidRequest(f"user_id must be 1 to {MAX_USER_ID} characters", param="user_id")


def new_memory_id() -> str:
    return f"mem-{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True, slots=True)
class Memory:
    id: str
    tenant: str
    user_id: str
    text: str
    created_at: float  # seconds since the epoch
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def owner(self) -> MemoryOwner:
        return MemoryOwner(self.tenant, self.user_id)


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """``score`` is the decayed relevance that orders hits; ``similarity`` the raw
    cosine similarity to the query."""

    id: str
    text: str
    score: float
    similarity: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class DecayPolicy:
    """score = similarity × 0.5^(age / half_life): a memory a half-life old counts
    half as much as a new one equally relevant."""

    half_life_s: float = 30 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.half_life_s <= 0:
            raise ValueError("half_life_s must be positive")

    def weight(self, created_at: float, now: float) -> float:
        age = max(0.0, now - created_at)
        return math.pow(0.5, age / self.half_life_s)

    def score(self, similarity: float, created_at: float, now: float) -> float:
        return similarity * self.weight(created_at, now)

    @property
    def lambda_per_s(self) -> float:
        """The same decay as exp(-λ·age), for engines that take a rate."""
        return math.log(2) / self.half_life_s


@dataclass(frozen=True, slots=True)
class MemoryTurn:
    """A conversation turn to remember, queued for the background writer."""

    memory_id: str
    tenant: str
    user_id: str
    text: str
    created_at: float
    attempts: int = 0

    @property
    def owner(self) -> MemoryOwner:
        return MemoryOwner(self.tenant, self.user_id)


def render_turn(user_message: str, assistant_message: str) -> str:
    """What is stored of a turn: both sides, so that later questions find either."""
    return f"User: {user_message.strip()}\nAssistant: {assistant_message.strip()}"

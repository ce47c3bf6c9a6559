"""Short-term context: the last turns of each user's conversation."""

from __future__ import annotations

from typing import Protocol

from domain.memory import MemoryOwner


class RecentTurns(Protocol):
    """The newest turns of a user, kept briefly, so that a follow-up question has them
    before long-term storage catches up. Scoped to an owner like memories.
    Errors: ``MemoryUnavailable``."""

    async def append(self, owner: MemoryOwner, text: str) -> None: ...

    async def recent(self, owner: MemoryOwner, limit: int) -> list[str]:
        """Newest first."""
        ...

    async def clear(self, owner: MemoryOwner) -> None: ...

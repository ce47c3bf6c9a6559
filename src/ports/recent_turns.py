"""Short-term context: the last turns of each user's conversation."""

from __future__ import annotations

from typing import Protocol


class RecentTurns(Protocol):
    """The newest turns of a user, kept briefly, so that a follow-up question has them
    before long-term storage catches up. Scoped to tenant and user like memories.
    Errors: ``MemoryUnavailable``."""

    async def append(self, tenant: str, user_id: str, text: str) -> None: ...

    async def recent(self, tenant: str, user_id: str, limit: int) -> list[str]:
        """Newest first."""
        ...

    async def clear(self, tenant: str, user_id: str) -> None: ...

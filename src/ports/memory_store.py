"""The long-term memory port."""

from __future__ import annotations

from typing import Protocol

from domain.documents import Page
from domain.health import ServiceHealth
from domain.memory import Memory, MemoryHit, MemoryOwner


class MemoryStore(Protocol):
    """Memories of one user of one tenant; every call is scoped to its owner, so a user
    never reaches another's (and ``user_id`` is data, never query syntax).

    Errors: ``domain.errors.MemoryUnavailable`` when the store cannot answer."""

    async def add(self, memory: Memory, vector: list[float]) -> None:
        """Store (or replace, by id) a memory with its embedding."""
        ...

    async def search(
        self, owner: MemoryOwner, text: str, vector: list[float], limit: int, now: float
    ) -> list[MemoryHit]:
        """At most ``limit`` memories, by decayed relevance at ``now``, best first."""
        ...

    async def list_memories(
        self, owner: MemoryOwner, limit: int, after: str | None = None
    ) -> Page[Memory]:
        """Newest first; ``after`` is the id of the last memory of the previous page."""
        ...

    async def get(self, owner: MemoryOwner, memory_id: str) -> Memory | None: ...

    async def update(
        self, owner: MemoryOwner, memory_id: str, text: str, vector: list[float]
    ) -> Memory | None:
        """New text (and embedding) for a memory; None when there is no such one."""
        ...

    async def delete(self, owner: MemoryOwner, memory_id: str) -> bool: ...

    async def forget(self, owner: MemoryOwner) -> int:
        """Delete every memory of the user; returns how many there were."""
        ...

    async def check(self) -> ServiceHealth: ...

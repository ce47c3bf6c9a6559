"""The write-behind queue between a chat turn and its storage as memory."""

from __future__ import annotations

from typing import Protocol

from domain.memory import MemoryTurn


class MemoryQueue(Protocol):
    """Durable where the adapter can be (a Redis stream): a turn acknowledged here is
    stored eventually, even across a crash. Errors: ``MemoryUnavailable``."""

    async def put(self, turn: MemoryTurn) -> None: ...

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, MemoryTurn]]:
        """Up to ``max_items`` turns with their receipts, waiting up to ``wait_s``."""
        ...

    async def ack(self, receipts: list[str]) -> None:
        """The turns are stored: drop them for good."""
        ...

    async def retry(self, receipt: str, turn: MemoryTurn) -> None:
        """Storing failed: put the turn back (with ``attempts`` incremented)."""
        ...

    async def depth(self) -> int: ...

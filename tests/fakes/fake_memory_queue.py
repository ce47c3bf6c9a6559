"""``FakeMemoryQueue``: the MemoryQueue port as plain lists a test can read and change.

``waiting`` are turns not yet taken, ``taken`` the ones handed out (by receipt) and not
yet acknowledged, ``acked`` and ``retried`` what happened to them. Set ``down`` to make
every call fail with ``MemoryUnavailable``."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from domain.errors import MemoryUnavailable
from domain.memory import MemoryTurn


class FakeMemoryQueue:
    def __init__(self) -> None:
        self.waiting: list[MemoryTurn] = []
        self.taken: dict[str, MemoryTurn] = {}
        self.acked: list[MemoryTurn] = []
        self.retried: list[MemoryTurn] = []
        self.down = False
        self._receipts = 0
        self._arrived = asyncio.Event()

    def _available(self) -> None:
        if self.down:
            raise MemoryUnavailable("the fake memory queue is down")

    async def put(self, turn: MemoryTurn) -> None:
        self._available()
        self.waiting.append(turn)
        self._arrived.set()

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, MemoryTurn]]:
        self._available()
        await asyncio.sleep(0)
        if not self.waiting:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait_s)
        batch, self.waiting = self.waiting[:max_items], self.waiting[max_items:]
        out = []
        for turn in batch:
            self._receipts += 1
            receipt = f"r{self._receipts}"
            self.taken[receipt] = turn
            out.append((receipt, turn))
        return out

    async def ack(self, receipts: list[str]) -> None:
        self._available()
        for receipt in receipts:
            turn = self.taken.pop(receipt, None)
            if turn is not None:
                self.acked.append(turn)

    async def retry(self, receipt: str, turn: MemoryTurn) -> None:
        self._available()
        self.taken.pop(receipt, None)
        again = replace(turn, attempts=turn.attempts + 1)
        self.retried.append(again)
        self.waiting.append(again)
        self._arrived.set()

    async def depth(self) -> int:
        self._available()
        return len(self.waiting) + len(self.taken)

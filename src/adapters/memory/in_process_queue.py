"""``InProcessMemoryQueue``: the write-behind queue in the gateway's memory (the embedded
default).

NOT DURABLE: whatever is queued or taken but not yet acknowledged lives in this process
only, and is lost if the process dies (a crash, a kill -9, a shutdown whose flush times
out). Graceful shutdown drains it (``MemoryWriter.flush``). Use ``RedisStreamMemoryQueue``
(``REDIS_URL``) when a crash must lose nothing."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import replace

from domain.errors import MemoryUnavailable
from domain.health import ServiceHealth, Status
from domain.memory import MemoryTurn


class InProcessMemoryQueue:
    """Bounded: at most ``maxsize`` turns waiting or taken-but-unacknowledged; ``put`` on
    a full queue raises ``MemoryUnavailable`` (a retry never does: its turn was counted).
    ``depth`` counts both, so a flush also waits for turns in flight. For one event loop."""

    def __init__(self, maxsize: int = 10_000, *, health_name: str = "memory_queue") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.health_name = health_name
        self._waiting: deque[MemoryTurn] = deque()
        self._taken: dict[str, MemoryTurn] = {}
        self._receipts = itertools.count(1)
        self._arrived = asyncio.Event()

    async def put(self, turn: MemoryTurn) -> None:
        if len(self._waiting) + len(self._taken) >= self.maxsize:
            raise MemoryUnavailable(f"the in-process memory queue is full ({self.maxsize} turns)")
        self._push(turn)

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, MemoryTurn]]:
        # Always yield once: a consumer looping on a non-empty queue lets others run.
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self._waiting:  # another taker may have won the turn that woke us
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return []
        taken: list[tuple[str, MemoryTurn]] = []
        while self._waiting and len(taken) < max_items:
            receipt = str(next(self._receipts))
            turn = self._waiting.popleft()
            self._taken[receipt] = turn
            taken.append((receipt, turn))
        return taken

    async def ack(self, receipts: list[str]) -> None:
        for receipt in receipts:
            self._taken.pop(receipt, None)

    async def retry(self, receipt: str, turn: MemoryTurn) -> None:
        self._taken.pop(receipt, None)
        self._push(replace(turn, attempts=turn.attempts + 1))

    async def depth(self) -> int:
        return len(self._waiting) + len(self._taken)

    async def check(self) -> ServiceHealth:
        detail = f"in process, not durable, {await self.depth()} turns queued"
        return ServiceHealth(self.health_name, Status.HEALTHY, 0.0, detail)

    def _push(self, turn: MemoryTurn) -> None:
        self._waiting.append(turn)
        self._arrived.set()

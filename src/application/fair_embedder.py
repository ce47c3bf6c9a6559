"""``FairEmbedder``: the document embedder shared fairly between tenants."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence

from ports.embedder import Embedder

MEMORY_LANE = "\x00memories"  # the background memory writer's lane (no tenant name)


class FairEmbedder:
    """Document embeddings (ingestion, ``/v1/embeddings``, stored memories) go through
    ``slots`` at a time, in slices of at most ``slice_size`` texts, the waiting lanes
    (one per tenant, one for the memory writer) served round-robin. One lane's bulk work
    delays another's next slice by at most one slice per busy lane, however much it
    queued. A caller cancelled while waiting gives up its place: nothing more of its
    work runs (the slice already running finishes). Queries do not come here: they have
    the embedder's own path. For one event loop."""

    def __init__(self, embedder: Embedder, *, slice_size: int = 16, slots: int = 1) -> None:
        if slice_size < 1 or slots < 1:
            raise ValueError("slice_size and slots must be at least 1")
        self.embedder = embedder
        self._slice = slice_size
        self._free = slots
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def embed(self, lane: str, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; ``lane`` is whose turn this work takes."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._slice):
            await self._turn(lane)
            try:
                vectors += await self.embedder.embed_documents(texts[start : start + self._slice])
            finally:
                self._release()
        return vectors

    async def _turn(self, lane: str) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        # A lane waiting already keeps its place in the round; a new one joins its end.
        self._waiting.setdefault(lane, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # granted as it was cancelled: pass the turn on
            else:
                waiters = self._waiting.get(lane)
                if waiters is not None and turn in waiters:
                    waiters.remove(turn)
                    if not waiters:
                        del self._waiting[lane]
            raise

    def _release(self) -> None:
        """Give the freed slot to the next lane of the round (it then goes to the end)."""
        while self._waiting:
            lane, waiters = self._waiting.popitem(last=False)
            turn = waiters.popleft()
            if waiters:
                self._waiting[lane] = waiters
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

"""Per-user memory: recall (with decay), remember (write-behind), manage, forget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from application.fair_embedder import MEMORY_LANE, FairEmbedder
from domain.documents import Page
from domain.errors import BackendUnavailable, InvalidRequest, NotFound
from domain.memory import (
    MEMORY_LIMIT_RANGE,
    Memory,
    MemoryHit,
    MemoryOwner,
    MemoryTurn,
    new_memory_id,
)
from ports.clock import Clock
from ports.embedder import Embedder
from ports.memory_queue import MemoryQueue
from ports.memory_store import MemoryStore
from ports.recent_turns import RecentTurns

log = logging.getLogger("gateway.memory")
MAX_MEMORY_CHARS = 20_000


class Memories:
    def __init__(
        self,
        store: MemoryStore,
        queue: MemoryQueue,
        embedder: Embedder,
        clock: Clock,
        recent: RecentTurns | None = None,
        *,
        fair: FairEmbedder | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._embedder = embedder
        self._fair = fair or FairEmbedder(embedder)
        self._clock = clock
        self._recent = recent

    async def recall(
        self,
        tenant: str,
        user_id: str,
        query: str,
        limit: int,
        vector: Sequence[float] | None = None,
    ) -> list[MemoryHit]:
        if not MEMORY_LIMIT_RANGE[0] <= limit <= MEMORY_LIMIT_RANGE[1]:
            raise InvalidRequest(
                f"limit must be between {MEMORY_LIMIT_RANGE[0]} and {MEMORY_LIMIT_RANGE[1]}",
                param="memory_limit",
            )
        owner = MemoryOwner(tenant, user_id)  # checked before paying for the embedding
        if vector is None:
            vector = await self._embedder.embed_query(query)
        return await self._store.search(owner, query, list(vector), limit, self._clock.now())

    async def remember(self, tenant: str, user_id: str, text: str) -> str:
        """Queue ``text`` for storage and return its memory id at once; the background
        writer embeds and stores it."""
        owner = MemoryOwner(tenant, user_id)
        turn = MemoryTurn(
            memory_id=new_memory_id(),
            tenant=owner.tenant,
            user_id=owner.user_id,
            text=text[:MAX_MEMORY_CHARS],
            created_at=self._clock.now(),
        )
        if self._recent is not None:
            # Short-term context first: a follow-up can use it before storage catches up.
            try:
                await self._recent.append(owner, turn.text)
            except BackendUnavailable as exc:
                log.warning("recent turns unavailable: %s", exc.message)
        await self._queue.put(turn)
        return turn.memory_id

    async def recent(self, tenant: str, user_id: str, limit: int) -> list[str]:
        """The user's newest turns (newest first), before long-term storage."""
        if self._recent is None:
            return []
        return await self._recent.recent(MemoryOwner(tenant, user_id), limit)

    async def add_now(
        self, tenant: str, user_id: str, text: str, metadata: dict[str, Any] | None = None
    ) -> Memory:
        """Store a memory synchronously (the management API's explicit add)."""
        if not text.strip():
            raise InvalidRequest("the memory text is empty", param="text")
        owner = MemoryOwner(tenant, user_id)
        memory = Memory(
            new_memory_id(), owner.tenant, owner.user_id, text, self._clock.now(), metadata or {}
        )
        await self._store.add(memory, (await self._fair.embed(tenant, [text]))[0])
        return memory

    async def list(
        self, tenant: str, user_id: str, limit: int, after: str | None = None
    ) -> Page[Memory]:
        return await self._store.list_memories(MemoryOwner(tenant, user_id), limit, after)

    async def get(self, tenant: str, user_id: str, memory_id: str) -> Memory:
        memory = await self._store.get(MemoryOwner(tenant, user_id), memory_id)
        if memory is None:
            raise NotFound(f"no memory {memory_id!r} for this user", param="memory_id")
        return memory

    async def update(self, tenant: str, user_id: str, memory_id: str, text: str) -> Memory:
        owner = MemoryOwner(tenant, user_id)
        if not text.strip():
            raise InvalidRequest("the memory text is empty", param="text")
        vector = (await self._fair.embed(tenant, [text]))[0]
        memory = await self._store.update(owner, memory_id, text, vector)
        if memory is None:
            raise NotFound(f"no memory {memory_id!r} for this user", param="memory_id")
        return memory

    async def delete(self, tenant: str, user_id: str, memory_id: str) -> None:
        if not await self._store.delete(MemoryOwner(tenant, user_id), memory_id):
            raise NotFound(f"no memory {memory_id!r} for this user", param="memory_id")

    async def forget(self, tenant: str, user_id: str, drain_s: float = 5.0) -> int:
        """Every memory of the user and their short-term context. Turns still queued for
        storage are let through first (up to ``drain_s``), so that none is stored after
        the user was forgotten."""
        owner = MemoryOwner(tenant, user_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        # The queue is another process's (Redis) or the writer's: polling its depth.
        while await self._queue.depth() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self._recent is not None:
            await self._recent.clear(owner)
        return await self._store.forget(owner)


class MemoryWriter:
    """Drains the queue: embeds each turn and stores it. A turn whose storage fails
    goes back to the queue; nothing is dropped."""

    def __init__(
        self,
        store: MemoryStore,
        queue: MemoryQueue,
        embedder: Embedder,
        *,
        batch: int = 32,
        wait_s: float = 0.5,
        backoff_s: float = 1.0,
        fair: FairEmbedder | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        # Turns of every tenant: the writer has a lane of its own on the shared embedder.
        self._fair = fair or FairEmbedder(embedder)
        self._batch = batch
        self._wait_s = wait_s
        self._backoff_s = backoff_s
        self.stored = 0
        self.failures = 0

    async def drain_once(self) -> int:
        """Store what is queued now; returns how many turns were stored. A turn that
        fails (embedding or storage) goes back to the queue; ``failures`` counts them."""
        items = await self._queue.take(self._batch, self._wait_s)
        self.failures = 0
        if not items:
            return 0
        done: list[str] = []
        settled: set[str] = set()  # stored or put back
        try:
            vectors = await self._embed([turn.text for _, turn in items])
            for (receipt, turn), vector in zip(items, vectors, strict=True):
                if vector is not None:
                    memory = Memory(
                        turn.memory_id, turn.tenant, turn.user_id, turn.text, turn.created_at
                    )
                    try:
                        await self._store.add(memory, vector)
                    except Exception as exc:  # any failure: the turn is kept, not lost
                        log.warning("storing memory %s failed: %s", turn.memory_id, exc)
                    else:
                        done.append(receipt)
                        settled.add(receipt)
                        continue
                self.failures += 1
                await self._queue.retry(receipt, turn)
                settled.add(receipt)
        except asyncio.CancelledError:
            # Stopped in the middle of a batch (shutdown): the turns not stored go back
            # to the queue, for the flush to store rather than wait for.
            for receipt, turn in items:
                if receipt not in settled:
                    await self._queue.retry(receipt, turn)
            await self._queue.ack(done)
            raise
        await self._queue.ack(done)
        self.stored += len(done)
        return len(done)

    async def _embed(self, texts: list[str]) -> list[list[float] | None]:
        """All at once; if that fails, one by one, so that one text the embedder
        refuses does not hold back the others (None where a text failed)."""
        try:
            return list(await self._fair.embed(MEMORY_LANE, texts))
        except Exception as exc:
            if len(texts) == 1:
                log.warning("embedding a memory failed: %s", exc)
                return [None]
        vectors: list[list[float] | None] = []
        for text in texts:
            try:
                vectors.append((await self._fair.embed(MEMORY_LANE, [text]))[0])
            except Exception as exc:
                log.warning("embedding a memory failed: %s", exc)
                vectors.append(None)
        return vectors

    async def run(self) -> None:
        """Until cancelled; backs off while turns fail (a backend down) and survives
        any error."""
        while True:
            try:
                await self.drain_once()
            except Exception as exc:
                log.warning("memory writer: %s; retrying in %.1f s", exc, self._backoff_s)
                await asyncio.sleep(self._backoff_s)
                continue
            if self.failures:
                await asyncio.sleep(self._backoff_s)

    async def flush(self, timeout_s: float) -> None:
        """Store everything queued now (graceful shutdown), within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while await self._queue.depth():
                await self.drain_once()
                if self.failures:
                    await asyncio.sleep(self._backoff_s)

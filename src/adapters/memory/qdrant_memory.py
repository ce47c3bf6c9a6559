"""Long-term memory on Qdrant, written once over a driver: the embedded default on a
Qdrant Edge shard (``QdrantEdgeMemoryStore``) and production on a Qdrant server or cluster
(``QdrantServerMemoryStore``) keep the same layout and answer the same searches.

Layout: one point per memory (a dense cosine vector and a BM25 sparse vector), its id a
UUID of (tenant, user id, memory id); the payload holds the owner (tenant as the tenant
key), the text, the creation instant (RFC 3339 for the engine's decay formula, epoch
seconds to return as is) and the metadata.

Search: dense and keyword retrievers over the owner's memories, each rescored in the
engine by temporal decay, fused by reciprocal rank; the fused hits are then ordered by
decayed cosine similarity (what ``score`` means on every memory backend)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from qdrant_client import AsyncQdrantClient

from adapters.qdrant.edge import EdgeDriver, rfc3339
from adapters.qdrant.engine import (
    Collection,
    Decay,
    IndexKind,
    KeywordEncoder,
    QdrantDriver,
    Search,
    StoredPoint,
    Upsert,
    Where,
    cosine,
    prefetch_depth,
    probe,
    unit,
)
from adapters.qdrant.server import ServerDriver
from domain.documents import Page
from domain.errors import InvalidRequest, MemoryUnavailable
from domain.health import ServiceHealth
from domain.memory import DecayPolicy, Memory, MemoryHit, MemoryOwner

TENANT, USER_ID, MEMORY_ID, TEXT, METADATA = "tenant", "user_id", "memory_id", "text", "metadata"
CREATED_AT = "created_at"  # RFC 3339, UTC: what the engines' decay formula reads
CREATED_AT_S = "created_at_s"  # the same instant in epoch seconds, returned as is
INDEXES: dict[str, IndexKind] = {TENANT: "tenant", USER_ID: "keyword", CREATED_AT: "datetime"}
_POINT_IDS = uuid.UUID("6c1f0d3e-2a57-4b8e-9d61-3f0e8a4c7b25")


def memory_point_id(owner: MemoryOwner, memory_id: str) -> str:
    """Qdrant wants UUIDs: one derived from the owner AND the id, so that a memory id
    repeated under another user can never replace (or reach) that user's memory."""
    return str(uuid.uuid5(_POINT_IDS, json.dumps([owner.tenant, owner.user_id, memory_id])))


def memory_payload(memory: Memory) -> dict[str, Any]:
    return {
        TENANT: memory.tenant,
        USER_ID: memory.user_id,
        MEMORY_ID: memory.id,
        TEXT: memory.text,
        CREATED_AT: rfc3339(memory.created_at),
        CREATED_AT_S: memory.created_at,
        METADATA: dict(memory.metadata),
    }


def memory_from(payload: Mapping[str, Any]) -> Memory:
    return Memory(
        id=payload[MEMORY_ID],
        tenant=payload[TENANT],
        user_id=payload[USER_ID],
        text=payload[TEXT],
        created_at=payload[CREATED_AT_S],
        metadata=dict(payload.get(METADATA) or {}),
    )


def newest_first(memories: Iterable[Memory], limit: int, after: str | None) -> Page[Memory]:
    """A page of a user's memories, newest first (ties by id); ``after`` must name one of
    them, the last of the previous page."""
    ordered = sorted(memories, key=lambda m: (m.created_at, m.id), reverse=True)
    start = 0
    if after is not None:
        position = next((i for i, m in enumerate(ordered) if m.id == after), None)
        if position is None:
            raise InvalidRequest(f"no memory {after!r} to list after", param="after")
        start = position + 1
    return Page(data=ordered[start : start + limit], has_more=len(ordered) > start + limit)


def _owned_by(owner: MemoryOwner) -> Where:
    # Exact keyword matches: a user id such as "*" or '{"$ne": 1}' is only itself.
    return Where(equals=((TENANT, owner.tenant), (USER_ID, owner.user_id)))


def _one(owner: MemoryOwner, memory_id: str) -> Where:
    owned = _owned_by(owner)
    return Where(equals=owned.equals, ids=(memory_point_id(owner, memory_id),))


class QdrantMemoryStore:
    """The ``MemoryStore`` port over one Qdrant collection, whatever the engine."""

    def __init__(
        self,
        driver: QdrantDriver,
        dimension: int,
        *,
        decay: DecayPolicy | None = None,
        health_name: str = "memory",
        keywords: KeywordEncoder | None = None,
    ) -> None:
        self.dimension = dimension
        self.health_name = health_name
        self._driver = driver
        self._decay = decay or DecayPolicy()
        self._keywords = keywords or KeywordEncoder()

    async def _point(self, memory: Memory, vector: list[float]) -> StoredPoint:
        terms = await asyncio.to_thread(self._keywords.document, memory.text)
        point_id = memory_point_id(memory.owner, memory.id)
        return StoredPoint(point_id, vector, terms, memory_payload(memory))

    async def add(self, memory: Memory, vector: list[float]) -> None:
        point = await self._point(memory, vector)
        await self._driver.write([Upsert([point])], action=f"store the memory {memory.id!r}")

    async def search(
        self, owner: MemoryOwner, text: str, vector: list[float], limit: int, now: float
    ) -> list[MemoryHit]:
        direction = unit(vector)
        search = Search(
            dense=direction,
            sparse=self._keywords.query(text),
            where=_owned_by(owner),
            limit=limit,
            depth=prefetch_depth(limit),
            decay=Decay(CREATED_AT, self._decay.half_life_s, now),
        )
        found = await self._driver.search(search, action="search the memories")
        hits = [
            MemoryHit(
                id=f.payload[MEMORY_ID],
                text=f.payload[TEXT],
                score=self._decay.score(
                    similarity := cosine(direction, f.dense), f.payload[CREATED_AT_S], now
                ),
                similarity=similarity,
                timestamp=f.payload[CREATED_AT_S],
            )
            for f in found
        ]
        # By decayed cosine; ties keep the fused order.
        return sorted(hits, key=lambda hit: hit.score, reverse=True)

    async def list_memories(
        self, owner: MemoryOwner, limit: int, after: str | None = None
    ) -> Page[Memory]:
        payloads = await self._driver.scroll(
            _owned_by(owner), limit=None, action="list the memories"
        )
        return newest_first((memory_from(p) for p in payloads), limit, after)

    async def get(self, owner: MemoryOwner, memory_id: str) -> Memory | None:
        payloads = await self._driver.scroll(
            _one(owner, memory_id), limit=1, action=f"read the memory {memory_id!r}"
        )
        return memory_from(payloads[0]) if payloads else None

    async def update(
        self, owner: MemoryOwner, memory_id: str, text: str, vector: list[float]
    ) -> Memory | None:
        current = await self.get(owner, memory_id)
        if current is None:
            return None
        memory = replace(current, text=text)
        point = await self._point(memory, vector)
        await self._driver.write([Upsert([point])], action=f"update the memory {memory_id!r}")
        return memory

    async def delete(self, owner: MemoryOwner, memory_id: str) -> bool:
        return bool(await self._driver.remove(_one(owner, memory_id), action="delete a memory"))

    async def forget(self, owner: MemoryOwner) -> int:
        return await self._driver.remove(_owned_by(owner), action="forget a user")

    async def check(self) -> ServiceHealth:
        return await probe(self._driver, self.health_name)

    async def close(self) -> None:
        await self._driver.close()


class StoreOptions(TypedDict, total=False):
    decay: DecayPolicy | None
    health_name: str
    keywords: KeywordEncoder | None


class QdrantEdgeMemoryStore(QdrantMemoryStore):
    """Every user's memories in one Qdrant Edge shard under ``directory`` (the embedded
    default). Opened on first use, driven from one dedicated thread; ``close()`` flushes
    and closes it."""

    def __init__(self, directory: Path, dimension: int, **options: Unpack[StoreOptions]) -> None:
        collection = Collection("memories", dimension, INDEXES)
        driver = EdgeDriver(directory, collection, unavailable=MemoryUnavailable)
        super().__init__(driver, dimension, **options)


class QdrantServerMemoryStore(QdrantMemoryStore):
    """Memories in ``collection`` of a Qdrant server; ``client`` is built and closed by
    the caller. The collection is created on first use."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        dimension: int,
        *,
        collection: str = "memories",
        **options: Unpack[StoreOptions],
    ) -> None:
        self.collection = collection
        layout = Collection(collection, dimension, INDEXES)
        driver = ServerDriver(client, layout, unavailable=MemoryUnavailable)
        super().__init__(driver, dimension, **options)

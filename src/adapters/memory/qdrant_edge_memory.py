"""``QdrantEdgeMemoryStore``: long-term memory in a Qdrant Edge shard of its own, in the
gateway's process (the embedded default; ``QdrantServerMemoryStore`` is the same on a
Qdrant server). The memory layout both adapters store is defined here.

Search is hybrid and decayed in the engine: the dense (cosine) and the keyword (BM25)
candidates of the user are each re-scored by ``score × 0.5^(age / half_life)`` (an
exponential-decay score formula over the ``created_at`` datetime payload, the same numbers
as ``DecayPolicy``) and fused by reciprocal rank; the fused top ``limit`` are the hits,
returned by their decayed cosine (``DecayPolicy.score``), best first."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from qdrant_edge import (
    CountRequest,
    DecayKind,
    EdgeShard,
    Expression,
    Filter,
    Formula,
    Fusion,
    HasIdCondition,
    KeywordIndexParams,
    PayloadSchemaType,
    Point,
    Prefetch,
    Query,
    QueryRequest,
    Record,
    ScoredPoint,
    ScrollRequest,
    UpdateOperation,
)

from adapters.vector.qdrant_edge_common import (
    DENSE,
    RRF_K,
    SPARSE,
    EdgeShardThread,
    KeywordEncoder,
    PayloadIndex,
    cosine,
    equals,
    open_shard,
    prefetch_depth,
    shard_config,
    unit,
)
from domain.documents import Page
from domain.errors import InvalidRequest, MemoryUnavailable
from domain.health import ServiceHealth, Status
from domain.memory import DecayPolicy, Memory, MemoryHit, MemoryOwner

# --- the memory layout (shared with the server adapter) ----------------------------------

TENANT, USER_ID, MEMORY_ID, TEXT, METADATA = "tenant", "user_id", "memory_id", "text", "metadata"
CREATED_AT = "created_at"  # RFC 3339, UTC: what the engines' decay formula reads
CREATED_AT_S = "created_at_s"  # the same instant in epoch seconds, returned as is
_POINT_IDS = uuid.UUID("6c1f0d3e-2a57-4b8e-9d61-3f0e8a4c7b25")


def memory_point_id(owner: MemoryOwner, memory_id: str) -> str:
    """Qdrant wants UUIDs: one derived from the owner AND the id, so that a memory id
    repeated under another user can never replace (or reach) that user's memory."""
    return str(uuid.uuid5(_POINT_IDS, json.dumps([owner.tenant, owner.user_id, memory_id])))


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


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


def ranked_hits(
    fused: Iterable[tuple[Mapping[str, Any], float]], decay: DecayPolicy, now: float
) -> list[MemoryHit]:
    """``(payload, cosine)`` of the fused top hits, as hits ordered by decayed cosine (ties
    keep the fused order)."""
    hits = [
        MemoryHit(
            id=payload[MEMORY_ID],
            text=payload[TEXT],
            score=decay.score(similarity, payload[CREATED_AT_S], now),
            similarity=similarity,
            timestamp=payload[CREATED_AT_S],
        )
        for payload, similarity in fused
    ]
    return sorted(hits, key=lambda hit: hit.score, reverse=True)


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


# --- the Edge engine ---------------------------------------------------------------------

_INDEXES: dict[str, PayloadIndex] = {
    TENANT: KeywordIndexParams(is_tenant=True),
    USER_ID: KeywordIndexParams(),
    CREATED_AT: PayloadSchemaType.Datetime,
}
_SCROLL_PAGE = 1024


def _owned_by(owner: MemoryOwner) -> Filter:
    # Exact keyword matches: a user id such as "*" or '{"$ne": 1}' is only itself.
    return Filter(must=[equals(TENANT, owner.tenant), equals(USER_ID, owner.user_id)])


def _one(owner: MemoryOwner, memory_id: str) -> Filter:
    point = memory_point_id(owner, memory_id)
    return Filter(
        must=[HasIdCondition({point}), equals(TENANT, owner.tenant), equals(USER_ID, owner.user_id)]
    )


def edge_decay(decay: DecayPolicy, now: float) -> Formula:
    """``$score × 0.5^(age / half_life)``: Qdrant's exponential decay is
    ``midpoint^(|x - target| / scale)``. A memory dated after ``now`` counts as new."""
    at = Expression.Datetime(rfc3339(now))
    created = Expression.Min([Expression.DatetimeKey(CREATED_AT), at])
    weight = Expression.Decay(
        DecayKind.Exp, created, target=at, midpoint=0.5, scale=decay.half_life_s
    )
    return Formula(Expression.Mult([Expression.Variable("$score"), weight]))


class QdrantEdgeMemoryStore:
    """Every user's memories in one shard under ``directory`` (a dense cosine vector of
    ``dimension`` and a BM25 sparse vector each; tenant, user id and creation time
    indexed). Opened on first use, driven from one dedicated thread; ``close()`` flushes
    and closes it."""

    def __init__(
        self,
        directory: Path,
        dimension: int,
        *,
        decay: DecayPolicy | None = None,
        health_name: str = "memory",
        keywords: KeywordEncoder | None = None,
    ) -> None:
        self.dimension = dimension
        self.health_name = health_name
        self._decay = decay or DecayPolicy()
        self._keywords = keywords or KeywordEncoder()
        self._shard = EdgeShardThread(
            Path(directory), self._open, name="memories", unavailable=MemoryUnavailable
        )

    def _open(self, path: Path) -> EdgeShard:
        return open_shard(path, shard_config(self.dimension), _INDEXES)

    def _point(self, memory: Memory, vector: Sequence[float]) -> Point:
        return Point(
            memory_point_id(memory.owner, memory.id),
            {DENSE: list(vector), SPARSE: self._keywords.document(memory.text)},
            memory_payload(memory),
        )

    async def add(self, memory: Memory, vector: list[float]) -> None:
        def write(shard: EdgeShard) -> None:
            shard.update(UpdateOperation.upsert_points([self._point(memory, vector)]))

        await self._shard.run(write)

    async def search(
        self, owner: MemoryOwner, text: str, vector: list[float], limit: int, now: float
    ) -> list[MemoryHit]:
        where = _owned_by(owner)
        direction = unit(vector)
        depth = prefetch_depth(limit)
        formula = edge_decay(self._decay, now)

        def decayed(query: Query) -> Prefetch:
            candidates = Prefetch(limit=depth, query=query, filter=where)
            return Prefetch(limit=depth, prefetches=[candidates], query=formula, filter=where)

        def run(shard: EdgeShard) -> list[tuple[Mapping[str, Any], float]]:
            sparse = self._keywords.query(text)
            request = QueryRequest(
                limit=limit,
                prefetches=[
                    decayed(Query.Nearest(direction, using=DENSE)),
                    decayed(Query.Nearest(sparse, using=SPARSE)),
                ],
                query=cast(Fusion, Fusion.Rrf(k=RRF_K)),  # the stub omits Fusion's variants
                filter=where,
                with_payload=True,
                with_vector=[DENSE],
            )
            return [(p.payload or {}, cosine(direction, _dense(p))) for p in shard.query(request)]

        return ranked_hits(await self._shard.run(run), self._decay, now)

    async def list_memories(
        self, owner: MemoryOwner, limit: int, after: str | None = None
    ) -> Page[Memory]:
        where = _owned_by(owner)

        def scan(shard: EdgeShard) -> list[Memory]:
            records: list[Record] = []
            offset = None
            while True:
                page, offset = shard.scroll(
                    ScrollRequest(
                        offset=offset, limit=_SCROLL_PAGE, filter=where, with_payload=True
                    )
                )
                records.extend(page)
                if offset is None:
                    return [memory_from(r.payload or {}) for r in records]

        return newest_first(await self._shard.run(scan), limit, after)

    async def get(self, owner: MemoryOwner, memory_id: str) -> Memory | None:
        return await self._shard.run(lambda shard: _get(shard, owner, memory_id))

    async def update(
        self, owner: MemoryOwner, memory_id: str, text: str, vector: list[float]
    ) -> Memory | None:
        def write(shard: EdgeShard) -> Memory | None:
            current = _get(shard, owner, memory_id)
            if current is None:
                return None
            memory = replace(current, text=text)
            shard.update(UpdateOperation.upsert_points([self._point(memory, vector)]))
            return memory

        return await self._shard.run(write)

    async def delete(self, owner: MemoryOwner, memory_id: str) -> bool:
        return bool(await self._remove(_one(owner, memory_id)))

    async def forget(self, owner: MemoryOwner) -> int:
        return await self._remove(_owned_by(owner))

    async def _remove(self, where: Filter) -> int:
        def remove(shard: EdgeShard) -> int:
            found = shard.count(CountRequest(exact=True, filter=where))
            if found:
                shard.update(UpdateOperation.delete_points_by_filter(where))
            return found

        return await self._shard.run(remove)

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            points = await self._shard.run(lambda shard: shard.info().points_count)
        except MemoryUnavailable as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        detail = f"embedded, {points} memories"
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started), detail)

    async def close(self) -> None:
        await self._shard.close()


def _get(shard: EdgeShard, owner: MemoryOwner, memory_id: str) -> Memory | None:
    records, _ = shard.scroll(
        ScrollRequest(limit=1, filter=_one(owner, memory_id), with_payload=True)
    )
    return memory_from(records[0].payload or {}) if records else None


def _dense(point: ScoredPoint) -> Sequence[float]:
    vectors = point.vector
    return cast("list[float]", vectors[DENSE]) if isinstance(vectors, dict) else []


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

"""``QdrantServerMemoryStore``: long-term memory in a collection of a Qdrant server (or
cluster) through ``qdrant_client.AsyncQdrantClient``; the same layout, hybrid search and
in-engine decay as the embedded ``QdrantEdgeMemoryStore``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, cast

import grpc
import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from adapters.memory.qdrant_edge_memory import (
    CREATED_AT,
    TENANT,
    USER_ID,
    memory_from,
    memory_payload,
    memory_point_id,
    newest_first,
    ranked_hits,
    rfc3339,
)
from adapters.vector.qdrant_edge_common import (
    DENSE,
    RRF_K,
    SPARSE,
    KeywordEncoder,
    cosine,
    prefetch_depth,
    unit,
)
from domain.documents import Page
from domain.errors import MemoryUnavailable
from domain.health import ServiceHealth, Status
from domain.memory import DecayPolicy, Memory, MemoryHit, MemoryOwner

_SCROLL_PAGE = 1024


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The client's errors (HTTP, gRPC, or a server's answer) become the port's."""
    try:
        yield
    except (ApiException, httpx.HTTPError, grpc.RpcError, OSError, TimeoutError) as exc:
        raise MemoryUnavailable(f"the Qdrant server could not {action}: {exc}") from exc


def _equals(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _owned_by(owner: MemoryOwner) -> models.Filter:
    # Exact keyword matches: a user id such as "*" or '{"$ne": 1}' is only itself.
    return models.Filter(must=[_equals(TENANT, owner.tenant), _equals(USER_ID, owner.user_id)])


def _one(owner: MemoryOwner, memory_id: str) -> models.Filter:
    point = memory_point_id(owner, memory_id)
    return models.Filter(
        must=[
            models.HasIdCondition(has_id=[point]),
            _equals(TENANT, owner.tenant),
            _equals(USER_ID, owner.user_id),
        ]
    )


def server_decay(decay: DecayPolicy, now: float) -> models.FormulaQuery:
    """``$score × 0.5^(age / half_life)``, as ``edge_decay`` builds it for Edge."""
    at = models.DatetimeExpression(datetime=rfc3339(now))
    created = models.MinExpression(min=[models.DatetimeKeyExpression(datetime_key=CREATED_AT), at])
    weight = models.ExpDecayExpression(
        exp_decay=models.DecayParamsExpression(
            x=created, target=at, scale=decay.half_life_s, midpoint=0.5
        )
    )
    return models.FormulaQuery(formula=models.MultExpression(mult=["$score", weight]))


class QdrantServerMemoryStore:
    """``client`` is built and closed by the caller. The collection is created on first
    use: a named cosine vector of ``dimension``, a BM25 sparse vector with the IDF
    modifier, and payload indexes on tenant (the tenant key), user id and creation time."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        dimension: int,
        *,
        collection: str = "memories",
        decay: DecayPolicy | None = None,
        health_name: str = "memory",
        keywords: KeywordEncoder | None = None,
    ) -> None:
        self.dimension = dimension
        self.collection = collection
        self.health_name = health_name
        self._client = client
        self._decay = decay or DecayPolicy()
        self._keywords = keywords or KeywordEncoder()
        self._ready = False
        self._ready_lock = asyncio.Lock()

    async def _ensure_collection(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            with _translated(f"prepare the collection {self.collection!r}"):
                if await self._client.collection_exists(self.collection):
                    await self._check_dimension()
                else:
                    await self._create_collection()
            self._ready = True

    async def _create_collection(self) -> None:
        try:
            await self._client.create_collection(
                self.collection,
                vectors_config={
                    DENSE: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
        except UnexpectedResponse as exc:
            if exc.status_code != 409:  # 409: another gateway instance created it first
                raise
        for field, schema in (
            (
                TENANT,
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            ),
            (USER_ID, models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)),
            (CREATED_AT, models.PayloadSchemaType.DATETIME),
        ):
            await self._client.create_payload_index(self.collection, field, schema)

    async def _check_dimension(self) -> None:
        info = await self._client.get_collection(self.collection)
        vectors = info.config.params.vectors
        params = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if params is None or params.size != self.dimension:
            raise MemoryUnavailable(
                f"the Qdrant collection {self.collection!r} does not hold {self.dimension}-"
                f"dimension {DENSE!r} vectors (the embedder's): use another collection"
            )

    async def _point(self, memory: Memory, vector: Sequence[float]) -> models.PointStruct:
        terms = await asyncio.to_thread(self._keywords.document, memory.text)
        return models.PointStruct(
            id=memory_point_id(memory.owner, memory.id),
            vector={
                DENSE: list(vector),
                SPARSE: models.SparseVector(indices=list(terms.indices), values=list(terms.values)),
            },
            payload=memory_payload(memory),
        )

    async def add(self, memory: Memory, vector: list[float]) -> None:
        await self._ensure_collection()
        point = await self._point(memory, vector)
        with _translated(f"store the memory {memory.id!r}"):
            await self._client.upsert(self.collection, [point])

    async def search(
        self, owner: MemoryOwner, text: str, vector: list[float], limit: int, now: float
    ) -> list[MemoryHit]:
        await self._ensure_collection()
        where = _owned_by(owner)
        direction = unit(vector)
        terms = self._keywords.query(text)
        sparse = models.SparseVector(indices=list(terms.indices), values=list(terms.values))
        depth = prefetch_depth(limit)
        formula = server_decay(self._decay, now)
        decayed = [
            models.Prefetch(
                prefetch=[models.Prefetch(query=query, using=using, limit=depth, filter=where)],
                query=formula,
                limit=depth,
                filter=where,
            )
            for query, using in ((direction, DENSE), (sparse, SPARSE))
        ]
        with _translated("search the memories"):
            response = await self._client.query_points(
                self.collection,
                prefetch=decayed,
                query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
                query_filter=where,
                limit=limit,
                with_payload=True,
                with_vectors=[DENSE],
            )
        fused = [(p.payload or {}, cosine(direction, _dense(p))) for p in response.points]
        return ranked_hits(fused, self._decay, now)

    async def list_memories(
        self, owner: MemoryOwner, limit: int, after: str | None = None
    ) -> Page[Memory]:
        await self._ensure_collection()
        memories: list[Memory] = []
        offset: models.ExtendedPointId | None = None
        with _translated("list the memories"):
            while True:
                records, offset = await self._client.scroll(
                    self.collection,
                    scroll_filter=_owned_by(owner),
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                )
                memories.extend(memory_from(r.payload or {}) for r in records)
                if offset is None:
                    break
        return newest_first(memories, limit, after)

    async def get(self, owner: MemoryOwner, memory_id: str) -> Memory | None:
        await self._ensure_collection()
        with _translated(f"read the memory {memory_id!r}"):
            records, _ = await self._client.scroll(
                self.collection,
                scroll_filter=_one(owner, memory_id),
                limit=1,
                with_payload=True,
            )
        return memory_from(records[0].payload or {}) if records else None

    async def update(
        self, owner: MemoryOwner, memory_id: str, text: str, vector: list[float]
    ) -> Memory | None:
        current = await self.get(owner, memory_id)
        if current is None:
            return None
        memory = replace(current, text=text)
        point = await self._point(memory, vector)
        with _translated(f"update the memory {memory_id!r}"):
            await self._client.upsert(self.collection, [point])
        return memory

    async def delete(self, owner: MemoryOwner, memory_id: str) -> bool:
        return bool(await self._remove(_one(owner, memory_id), "delete a memory"))

    async def forget(self, owner: MemoryOwner) -> int:
        return await self._remove(_owned_by(owner), "forget a user")

    async def _remove(self, where: models.Filter, action: str) -> int:
        await self._ensure_collection()
        with _translated(action):
            found = (
                await self._client.count(self.collection, count_filter=where, exact=True)
            ).count
            if found:
                await self._client.delete(self.collection, models.FilterSelector(filter=where))
        return found

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            with _translated("answer"):
                await self._client.collection_exists(self.collection)
        except MemoryUnavailable as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started))


def _dense(point: models.ScoredPoint) -> Sequence[float]:
    vectors: Any = point.vector
    return cast("list[float]", vectors[DENSE]) if isinstance(vectors, dict) else []


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

"""The Qdrant server driver: one collection of a Qdrant server (or cluster) through
``qdrant_client.AsyncQdrantClient``, which the caller builds and closes. The collection
is created on first use (another instance creating it at the same time is fine); an
existing one must hold vectors of the store's dimension."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import grpc
import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse
from qdrant_edge import SparseVector

from adapters.qdrant.edge import rfc3339
from adapters.qdrant.engine import (
    DENSE,
    RRF_K,
    SCROLL_PAGE,
    SPARSE,
    Collection,
    Decay,
    DeleteIds,
    DeleteWhere,
    Found,
    IndexKind,
    Payload,
    Search,
    StoredPoint,
    Where,
    Write,
)
from domain.errors import BackendUnavailable


def _equals(key: str, value: str | int) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def server_filter(where: Where) -> models.Filter:
    must: list[models.Condition] = [_equals(key, value) for key, value in where.equals]
    if where.ids:
        must.insert(0, models.HasIdCondition(has_id=list(where.ids)))
    if where.any_of:
        must.append(models.Filter(should=[_equals(key, value) for key, value in where.any_of]))
    must += [
        models.FieldCondition(key=key, range=models.Range(**bounds)) for key, bounds in where.ranges
    ]
    must_not: list[models.Condition] = (
        [models.HasIdCondition(has_id=list(where.not_ids))] if where.not_ids else []
    )
    return models.Filter(must=must, must_not=must_not or None)


def server_point(point: StoredPoint) -> models.PointStruct:
    if point.dense is None or point.sparse is None:
        return models.PointStruct(id=point.id, vector={}, payload=dict(point.payload))
    return models.PointStruct(
        id=point.id,
        vector={DENSE: list(point.dense), SPARSE: sparse(point.sparse)},
        payload=dict(point.payload),
    )


def server_decay(decay: Decay) -> models.FormulaQuery:
    """``$score × 0.5^(age / half_life)``, as ``edge_decay`` builds it for Edge."""
    at = models.DatetimeExpression(datetime=rfc3339(decay.now))
    created = models.MinExpression(min=[models.DatetimeKeyExpression(datetime_key=decay.key), at])
    weight = models.ExpDecayExpression(
        exp_decay=models.DecayParamsExpression(
            x=created, target=at, scale=decay.half_life_s, midpoint=0.5
        )
    )
    return models.FormulaQuery(formula=models.MultExpression(mult=["$score", weight]))


def sparse(terms: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(terms.indices), values=list(terms.values))


def payload_schema(kind: IndexKind) -> models.PayloadSchemaType | models.KeywordIndexParams:
    if kind == "datetime":
        return models.PayloadSchemaType.DATETIME
    return models.KeywordIndexParams(
        type=models.KeywordIndexType.KEYWORD, is_tenant=kind == "tenant"
    )


class ServerDriver:
    def __init__(
        self,
        client: AsyncQdrantClient,
        collection: Collection,
        *,
        unavailable: type[BackendUnavailable],
    ) -> None:
        self._client = client
        self._collection = collection
        self._name = collection.name
        self._unavailable = unavailable
        self._ready = False
        self._ready_lock = asyncio.Lock()

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """The client's errors (HTTP, gRPC, or a server's answer) become the store's."""
        try:
            yield
        except (ApiException, httpx.HTTPError, grpc.RpcError, OSError, TimeoutError) as exc:
            raise self._unavailable(f"the Qdrant server could not {action}: {exc}") from exc

    async def _ensure_collection(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            with self._translated(f"prepare the collection {self._name!r}"):
                if await self._client.collection_exists(self._name):
                    await self._check_dimension()
                else:
                    await self._create_collection()
            self._ready = True

    async def _create_collection(self) -> None:
        dimension = self._collection.dimension
        try:
            await self._client.create_collection(
                self._name,
                vectors_config={
                    DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
        except UnexpectedResponse as exc:
            if exc.status_code != 409:  # 409: another gateway instance created it first
                raise
        for field, kind in self._collection.indexes.items():
            await self._client.create_payload_index(self._name, field, payload_schema(kind))

    async def _check_dimension(self) -> None:
        info = await self._client.get_collection(self._name)
        vectors = info.config.params.vectors
        params = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if params is None or params.size != self._collection.dimension:
            held = f"{params.size}-dimension" if params else f"no {DENSE!r}"
            raise self._unavailable(
                f"the Qdrant collection {self._name!r} holds {held} vectors but the "
                f"embedder makes {self._collection.dimension} dimensions: use another collection"
            )

    async def write(self, writes: Sequence[Write], *, action: str) -> None:
        await self._ensure_collection()
        with self._translated(action):
            for write in writes:
                if isinstance(write, DeleteIds):
                    ids = models.PointIdsList(points=list(write.ids))
                    await self._client.delete(self._name, ids)
                elif isinstance(write, DeleteWhere):
                    found = models.FilterSelector(filter=server_filter(write.where))
                    await self._client.delete(self._name, found)
                else:
                    points = [server_point(p) for p in write.points]
                    await self._client.upsert(self._name, points)

    async def search(self, search: Search, *, action: str) -> list[Found]:
        await self._ensure_collection()
        where = server_filter(search.where)
        formula = server_decay(search.decay) if search.decay is not None else None

        def retriever(query: Any, using: str) -> models.Prefetch:
            candidates = models.Prefetch(query=query, using=using, limit=search.depth, filter=where)
            if formula is None:
                return candidates
            return models.Prefetch(
                prefetch=[candidates], query=formula, limit=search.depth, filter=where
            )

        dense, keyword = list(search.dense), sparse(search.sparse)
        request: dict[str, Any]
        if search.retrievers == "hybrid":
            request = {
                "prefetch": [retriever(dense, DENSE), retriever(keyword, SPARSE)],
                "query": models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
            }
        elif search.retrievers == "dense":
            request = {"query": dense, "using": DENSE, "score_threshold": search.score_threshold}
        else:
            request = {"query": keyword, "using": SPARSE}
        with self._translated(action):
            response = await self._client.query_points(
                self._name,
                query_filter=where,
                limit=search.limit,
                with_payload=list(search.fields) if search.fields is not None else True,
                with_vectors=[DENSE] if search.with_dense else False,
                **request,
            )
        return [Found(p.payload or {}, p.score, _dense(p)) for p in response.points]

    async def scroll(self, where: Where, *, limit: int | None, action: str) -> list[Payload]:
        await self._ensure_collection()
        condition = server_filter(where)
        page_size = SCROLL_PAGE if limit is None else min(limit, SCROLL_PAGE)
        payloads: list[Payload] = []
        offset: models.ExtendedPointId | None = None
        with self._translated(action):
            while True:
                records, offset = await self._client.scroll(
                    self._name,
                    scroll_filter=condition,
                    limit=page_size,
                    offset=offset,
                    with_payload=True,
                )
                payloads.extend(r.payload or {} for r in records)
                if offset is None or (limit is not None and len(payloads) >= limit):
                    return payloads[:limit]

    async def remove(self, where: Where, *, action: str) -> int:
        await self._ensure_collection()
        condition = server_filter(where)
        with self._translated(action):
            found = (await self._client.count(self._name, count_filter=condition, exact=True)).count
            if found:
                await self._client.delete(self._name, models.FilterSelector(filter=condition))
        return found

    async def optimize(self) -> None:
        """A server indexes and compacts by itself."""

    async def describe(self) -> str | None:
        with self._translated("answer"):
            await self._client.collection_exists(self._name)
        return None

    async def close(self) -> None:
        """The client is the caller's to close."""


def _dense(point: models.ScoredPoint) -> Sequence[float]:
    vectors: Any = point.vector
    return cast("list[float]", vectors[DENSE]) if isinstance(vectors, dict) else []

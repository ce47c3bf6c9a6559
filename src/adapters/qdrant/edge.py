"""The Qdrant Edge driver: one shard on local disk, opened on first use and driven from
ONE dedicated thread (the engine is synchronous and CPU-bound and a shard is not known to
be thread-safe, so the event loop never runs it and two calls never overlap)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

from qdrant_edge import (
    CountRequest,
    DecayKind,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    Expression,
    FieldCondition,
    Filter,
    Formula,
    Fusion,
    HasIdCondition,
    HasVectorCondition,
    IsEmptyCondition,
    IsNullCondition,
    KeywordIndexParams,
    MatchValue,
    Modifier,
    NestedCondition,
    PayloadSchemaType,
    Point,
    Prefetch,
    Query,
    QueryRequest,
    RangeFloat,
    Record,
    ScoredPoint,
    ScrollRequest,
    UpdateOperation,
)

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
from domain.errors import BackendUnavailable, GatewayError, IndexUnavailable

T = TypeVar("T")
Condition = (
    FieldCondition
    | IsEmptyCondition
    | IsNullCondition
    | HasIdCondition
    | HasVectorCondition
    | NestedCondition
    | Filter
)
PayloadIndex = PayloadSchemaType | KeywordIndexParams


def shard_config(dimension: int) -> EdgeConfig:
    """A named cosine vector of ``dimension`` and a BM25 sparse vector weighted by IDF."""
    return EdgeConfig(
        vectors={DENSE: EdgeVectorParams(size=dimension, distance=Distance.Cosine)},
        sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
    )


def payload_index(kind: IndexKind) -> PayloadIndex:
    if kind == "tenant":
        return KeywordIndexParams(is_tenant=True)
    if kind == "keyword":
        return KeywordIndexParams()
    return PayloadSchemaType.Datetime


def open_shard(path: Path, config: EdgeConfig, indexes: Mapping[str, PayloadIndex]) -> EdgeShard:
    """Load the shard at ``path`` (checking ``config`` against it) or create it there;
    then create the payload indexes it lacks."""
    path.mkdir(parents=True, exist_ok=True)
    if (path / "edge_config.json").exists():
        shard = EdgeShard.load(str(path), config)
    else:
        shard = EdgeShard.create(str(path), config)
    present = shard.info().payload_schema
    for field, schema in indexes.items():
        if field not in present:
            shard.update(UpdateOperation.create_field_index(field, schema))
    return shard


class EdgeShardThread:
    """One shard, opened on first use; every call on it runs on one dedicated thread.
    Engine failures become ``unavailable`` (the engine raises plain ``Exception``)."""

    def __init__(
        self,
        path: Path,
        opener: Callable[[Path], EdgeShard],
        *,
        name: str,
        unavailable: type[BackendUnavailable] = IndexUnavailable,
    ) -> None:
        self.path = path
        self._opener = opener
        self._name = name
        self._unavailable = unavailable
        self._executor: ThreadPoolExecutor | None = None
        self._shard: EdgeShard | None = None  # touched on the shard's thread only

    async def run(self, work: Callable[[EdgeShard], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"qdrant-edge-{self._name}")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._on_shard, work
            )
        except GatewayError:
            raise
        except Exception as exc:
            raise self._unavailable(f"the Qdrant Edge shard {self._name!r} failed: {exc}") from exc

    def _on_shard(self, work: Callable[[EdgeShard], T]) -> T:
        if self._shard is None:
            self._shard = self._opener(self.path)
        return work(self._shard)

    async def close(self) -> None:
        """Flush and close the shard and stop its thread (a later call reopens it)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_shard)
        finally:
            executor.shutdown(wait=False)

    def _close_shard(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.flush()
            shard.close()


def equals(key: str, value: str | int) -> FieldCondition:
    return FieldCondition(key=key, match=MatchValue(value))


def edge_filter(where: Where) -> Filter:
    must: list[Condition] = [equals(key, value) for key, value in where.equals]
    if where.ids:
        must.insert(0, HasIdCondition(set(where.ids)))
    if where.any_of:
        must.append(Filter(should=[equals(key, value) for key, value in where.any_of]))
    must += [FieldCondition(key=key, range=RangeFloat(**bounds)) for key, bounds in where.ranges]
    must_not: list[Condition] = [HasIdCondition(set(where.not_ids))] if where.not_ids else []
    return Filter(must=must, must_not=must_not or None)


def edge_point(point: StoredPoint) -> Point:
    if point.dense is None or point.sparse is None:
        return Point(point.id, {}, dict(point.payload))
    return Point(point.id, {DENSE: list(point.dense), SPARSE: point.sparse}, dict(point.payload))


def edge_update(write: Write) -> UpdateOperation:
    if isinstance(write, DeleteIds):
        return UpdateOperation.delete_points(list(write.ids))
    if isinstance(write, DeleteWhere):
        return UpdateOperation.delete_points_by_filter(edge_filter(write.where))
    return UpdateOperation.upsert_points([edge_point(p) for p in write.points])


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def edge_decay(decay: Decay) -> Formula:
    """``$score × 0.5^(age / half_life)``: Qdrant's exponential decay is
    ``midpoint^(|x - target| / scale)``. A point dated after ``now`` counts as new."""
    at = Expression.Datetime(rfc3339(decay.now))
    created = Expression.Min([Expression.DatetimeKey(decay.key), at])
    weight = Expression.Decay(
        DecayKind.Exp, created, target=at, midpoint=0.5, scale=decay.half_life_s
    )
    return Formula(Expression.Mult([Expression.Variable("$score"), weight]))


class EdgeDriver:
    """``collection`` in a shard under ``directory``."""

    def __init__(
        self,
        directory: Path,
        collection: Collection,
        *,
        unavailable: type[BackendUnavailable],
    ) -> None:
        indexes = {key: payload_index(kind) for key, kind in collection.indexes.items()}
        config = shard_config(collection.dimension)
        self._shard = EdgeShardThread(
            Path(directory),
            lambda path: open_shard(path, config, indexes),
            name=collection.name,
            unavailable=unavailable,
        )

    async def write(self, writes: Sequence[Write], *, action: str) -> None:
        def apply(shard: EdgeShard) -> None:
            for write in writes:
                shard.update(edge_update(write))

        await self._shard.run(apply)

    async def search(self, search: Search, *, action: str) -> list[Found]:
        where = edge_filter(search.where)
        formula = edge_decay(search.decay) if search.decay is not None else None

        def retriever(query: Query) -> Prefetch:
            candidates = Prefetch(limit=search.depth, query=query, filter=where)
            if formula is None:
                return candidates
            return Prefetch(
                limit=search.depth, prefetches=[candidates], query=formula, filter=where
            )

        dense = Query.Nearest(list(search.dense), using=DENSE)
        keyword = Query.Nearest(search.sparse, using=SPARSE)
        fields = list(search.fields) if search.fields is not None else True
        vectors = [DENSE] if search.with_dense else None
        if search.retrievers == "hybrid":
            request = QueryRequest(
                limit=search.limit,
                prefetches=[retriever(dense), retriever(keyword)],
                query=cast(Fusion, Fusion.Rrf(k=RRF_K)),  # the stub omits Fusion's variants
                filter=where,
                with_payload=fields,
                with_vector=vectors,
            )
        else:
            request = QueryRequest(
                limit=search.limit,
                query=dense if search.retrievers == "dense" else keyword,
                filter=where,
                with_payload=fields,
                with_vector=vectors,
                score_threshold=search.score_threshold,
            )
        points = await self._shard.run(lambda shard: shard.query(request))
        return [Found(p.payload or {}, p.score, _dense(p)) for p in points]

    async def scroll(self, where: Where, *, limit: int | None, action: str) -> list[Payload]:
        condition = edge_filter(where)
        page_size = SCROLL_PAGE if limit is None else min(limit, SCROLL_PAGE)

        def scan(shard: EdgeShard) -> list[Payload]:
            records: list[Record] = []
            offset = None
            while True:
                page, offset = shard.scroll(
                    ScrollRequest(
                        offset=offset, limit=page_size, filter=condition, with_payload=True
                    )
                )
                records.extend(page)
                if offset is None or (limit is not None and len(records) >= limit):
                    return [r.payload or {} for r in records[:limit]]

        return await self._shard.run(scan)

    async def remove(self, where: Where, *, action: str) -> int:
        condition = edge_filter(where)

        def remove(shard: EdgeShard) -> int:
            found = shard.count(CountRequest(exact=True, filter=condition))
            if found:
                shard.update(UpdateOperation.delete_points_by_filter(condition))
            return found

        return await self._shard.run(remove)

    async def optimize(self) -> None:
        await self._shard.run(lambda shard: shard.optimize())

    async def describe(self) -> str | None:
        points = await self._shard.run(lambda shard: shard.info().points_count)
        return f"embedded, {points} points"

    async def close(self) -> None:
        await self._shard.close()


def _dense(point: ScoredPoint) -> Sequence[float]:
    vectors = point.vector
    return cast("list[float]", vectors[DENSE]) if isinstance(vectors, dict) else []

"""``QdrantServerIndex``: the knowledge base in a collection of a Qdrant server (or
cluster) through ``qdrant_client.AsyncQdrantClient``; the same layout and answers as the
embedded ``QdrantEdgeIndex``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import grpc
import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse
from qdrant_edge import SparseVector

from adapters.vector.qdrant_edge_common import (
    CHUNK,
    CREATED_AT,
    DENSE,
    DOCUMENT_ID,
    FILTERED_FIELDS,
    HIT_FIELDS,
    KIND,
    METADATA_TERMS,
    SCOPE,
    SOURCE,
    SPARSE,
    SUMMARY,
    TENANT,
    KeywordEncoder,
    best_hits,
    chunk_from,
    chunk_payload,
    detail_of,
    metadata_terms,
    page_of,
    prefetch_depth,
    read_limit,
    summary_from,
    summary_payload,
    summary_point_id,
    unit,
)
from domain.documents import (
    Chunk,
    Document,
    DocumentDetail,
    DocumentHit,
    DocumentListFilter,
    DocumentSummary,
    Page,
    Scope,
    SearchMode,
    SearchQuery,
)
from domain.errors import IndexUnavailable
from domain.health import ServiceHealth, Status
from domain.search_filter import SearchFilter

_SCROLL_PAGE = 1024


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The client's errors (HTTP, gRPC, or a server's answer) become the port's."""
    try:
        yield
    except (ApiException, httpx.HTTPError, grpc.RpcError, OSError, TimeoutError) as exc:
        raise IndexUnavailable(f"the Qdrant server could not {action}: {exc}") from exc


def _equals(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _conditions(conditions: Mapping[str, Any]) -> list[models.FieldCondition]:
    """The server conditions of a search filter: user metadata and system fields."""
    where = SearchFilter.parse(conditions)
    found = [_equals(METADATA_TERMS, term) for term in metadata_terms(where.metadata)]
    found += [_equals(key, value) for key, value in where.exact.items()]
    if where.created_at:
        found.append(models.FieldCondition(key=CREATED_AT, range=models.Range(**where.created_at)))
    return found


def _visible_to(tenant: str) -> models.Filter:
    return models.Filter(should=[_equals(TENANT, tenant), _equals(SCOPE, Scope.GLOBAL.value)])


def _sparse(terms: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=terms.indices, values=terms.values)


class QdrantServerIndex:
    """``client`` is built by the caller (from ``QDRANT_URL`` / ``QDRANT_API_KEY``) and
    closed by it. The collection is created on first use: a named cosine vector of
    ``dimension``, a BM25 sparse vector with the IDF modifier, and payload indexes for
    tenant (as the tenant key), scope, document id, source, kind and metadata terms."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        dimension: int,
        *,
        collection: str = "documents",
        health_name: str = "qdrant",
        keywords: KeywordEncoder | None = None,
        now: Callable[[], float] = time.time,
        upsert_batch: int = 256,
    ) -> None:
        self.dimension = dimension
        self.collection = collection
        self.health_name = health_name
        self._client = client
        self._keywords = keywords or KeywordEncoder()
        self._now = now
        self._batch = upsert_batch
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
        for field in (*FILTERED_FIELDS, SOURCE):
            await self._client.create_payload_index(
                self.collection,
                field,
                models.KeywordIndexParams(
                    type=models.KeywordIndexType.KEYWORD, is_tenant=field == TENANT
                ),
            )

    async def _check_dimension(self) -> None:
        info = await self._client.get_collection(self.collection)
        vectors = info.config.params.vectors
        params = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if params is None or params.size != self.dimension:
            held = f"{params.size}-dimension" if params else f"no {DENSE!r}"
            raise IndexUnavailable(
                f"the Qdrant collection {self.collection!r} holds {held} vectors but the "
                f"embedder makes {self.dimension} dimensions: use another collection"
            )

    async def replace(
        self, document: Document, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        await self._ensure_collection()
        created_at = self._now()

        def to_points() -> list[models.PointStruct]:
            return [
                models.PointStruct(
                    id=chunk.id,
                    vector={
                        DENSE: list(vector),
                        SPARSE: _sparse(self._keywords.document(chunk.text)),
                    },
                    payload=chunk_payload(document, chunk, created_at),
                )
                for chunk, vector in zip(chunks, vectors, strict=True)
            ]

        # BM25 and validating many points is CPU work: off the event loop.
        points = await asyncio.to_thread(to_points)
        summary_id = summary_point_id(document.id)
        stale = models.Filter(
            must=[_equals(DOCUMENT_ID, document.id), _equals(KIND, CHUNK)],
            must_not=[models.HasIdCondition(has_id=[chunk.id for chunk in chunks])],
        )
        summary = models.PointStruct(
            id=summary_id, vector={}, payload=summary_payload(document, len(chunks), created_at)
        )
        with _translated(f"store the document {document.id!r}"):
            # Unlisted while it changes: a replace cut short leaves no summary behind.
            await self._client.delete(self.collection, models.PointIdsList(points=[summary_id]))
            for start in range(0, len(points), self._batch):
                await self._client.upsert(self.collection, points[start : start + self._batch])
            await self._client.delete(self.collection, models.FilterSelector(filter=stale))
            await self._client.upsert(self.collection, [summary])

    async def search(self, query: SearchQuery) -> list[DocumentHit]:
        where = models.Filter(
            must=[
                _equals(KIND, CHUNK),
                _visible_to(query.tenant),
                *_conditions(query.filter),
            ]
        )
        await self._ensure_collection()
        direction = unit(query.vector)
        sparse = _sparse(self._keywords.query(query.text))
        depth = prefetch_depth(query.k)
        request: dict[str, Any]
        if query.mode is SearchMode.DENSE:
            request = {"query": direction, "using": DENSE, "score_threshold": query.threshold}
        elif query.mode is SearchMode.KEYWORD:
            request = {"query": sparse, "using": SPARSE, "with_vectors": [DENSE]}
        else:
            request = {
                "prefetch": [
                    models.Prefetch(query=direction, using=DENSE, limit=depth, filter=where),
                    models.Prefetch(query=sparse, using=SPARSE, limit=depth, filter=where),
                ],
                "query": models.FusionQuery(fusion=models.Fusion.RRF),  # k = 2, as RRF_K
                "with_vectors": [DENSE],
            }
        with _translated("search the documents"):
            response = await self._client.query_points(
                self.collection,
                query_filter=where,
                limit=read_limit(query),
                with_payload=list(HIT_FIELDS),
                **request,
            )
        found = ((p.payload or {}, p.score, _dense(p)) for p in response.points)
        return best_hits(query, direction, found)

    async def list_documents(
        self,
        tenant: str,
        limit: int,
        after: str | None = None,
        where: DocumentListFilter | None = None,
    ) -> Page[DocumentSummary]:
        visible = models.Filter(must=[_equals(KIND, SUMMARY), _visible_to(tenant)])
        with _translated("list the documents"):
            records = await self._scroll(visible)
        return page_of((summary_from(r.payload or {}) for r in records), limit, after, where)

    async def get_document(
        self, tenant: str, document_id: str, *, with_chunks: bool = False
    ) -> DocumentDetail | None:
        def owned(kind: str) -> models.Filter:
            return models.Filter(
                must=[
                    _equals(TENANT, tenant),
                    _equals(DOCUMENT_ID, document_id),
                    _equals(KIND, kind),
                ]
            )

        with _translated(f"read the document {document_id!r}"):
            summaries = [r.payload or {} for r in await self._scroll(owned(SUMMARY))]
            if not summaries or not with_chunks:
                return detail_of(summaries, None)
            records = await self._scroll(owned(CHUNK))
        return detail_of(summaries, (chunk_from(str(r.id), r.payload or {}) for r in records))

    async def _scroll(self, where: models.Filter) -> list[models.Record]:
        await self._ensure_collection()
        found: list[models.Record] = []
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = await self._client.scroll(
                self.collection,
                scroll_filter=where,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=True,
            )
            found.extend(records)
            if offset is None:
                return found

    async def delete(self, tenant: str, document_id: str) -> bool:
        await self._ensure_collection()
        owned = models.Filter(must=[_equals(TENANT, tenant), _equals(DOCUMENT_ID, document_id)])
        with _translated(f"delete the document {document_id!r}"):
            found = await self._client.count(self.collection, count_filter=owned, exact=True)
            if not found.count:
                return False
            await self._client.delete(self.collection, models.FilterSelector(filter=owned))
        return True

    async def optimize(self) -> None:
        """A server indexes and compacts by itself."""

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            with _translated("answer"):
                await self._client.collection_exists(self.collection)
        except IndexUnavailable as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started))


def _dense(point: models.ScoredPoint) -> Sequence[float]:
    vectors = point.vector
    return cast("list[float]", vectors[DENSE]) if isinstance(vectors, dict) else []


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

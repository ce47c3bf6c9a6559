"""``QdrantEdgeIndex``: the knowledge base in a Qdrant Edge shard on local disk, in the
gateway's own process (the embedded default; ``QdrantServerIndex`` is the same on a
Qdrant server)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from qdrant_edge import (
    CountRequest,
    EdgeShard,
    Filter,
    HasIdCondition,
    KeywordIndexParams,
    Point,
    Record,
    ScoredPoint,
    ScrollRequest,
    UpdateOperation,
)

from adapters.vector.qdrant_edge_common import (
    CHUNK,
    DENSE,
    DOCUMENT_ID,
    FILTERED_FIELDS,
    KIND,
    SCOPE,
    SPARSE,
    SUMMARY,
    TENANT,
    EdgeShardThread,
    KeywordEncoder,
    PayloadIndex,
    best_hits,
    chunk_from,
    chunk_payload,
    detail_of,
    edge_conditions,
    edge_search_request,
    equals,
    open_shard,
    page_of,
    prefetch_depth,
    read_limit,
    shard_config,
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
from domain.health import ServiceHealth, Status

# Only what queries filter on: each index costs the shard's creation ~150 ms of fsyncs.
_INDEXES: dict[str, PayloadIndex] = {
    field: KeywordIndexParams(is_tenant=field == TENANT) for field in FILTERED_FIELDS
}
_SCROLL_PAGE = 1024


def _visible_to(tenant: str) -> Filter:
    return Filter(should=[equals(TENANT, tenant), equals(SCOPE, Scope.GLOBAL.value)])


class QdrantEdgeIndex:
    """One shard under ``directory`` holds every tenant's chunks (a dense cosine vector of
    ``dimension`` and a BM25 sparse vector each) and one summary point per document (no
    vector, ``kind: document``), written last by ``replace``. The shard is opened on first
    use; ``close()`` flushes and closes it."""

    def __init__(
        self,
        directory: Path,
        dimension: int,
        *,
        health_name: str = "qdrant",
        keywords: KeywordEncoder | None = None,
        now: Callable[[], float] = time.time,
        upsert_batch: int = 256,
    ) -> None:
        self.directory = Path(directory)
        self.dimension = dimension
        self.health_name = health_name
        self._keywords = keywords or KeywordEncoder()
        self._now = now
        self._batch = upsert_batch
        self._shard = EdgeShardThread(self.directory, self._open, name="documents")

    def _open(self, path: Path) -> EdgeShard:
        return open_shard(path, shard_config(self.dimension), _INDEXES)

    async def replace(
        self, document: Document, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        created_at = self._now()
        summary_id = summary_point_id(document.id)

        def write(shard: EdgeShard) -> None:
            # Unlisted while it changes: a replace cut short leaves no summary behind.
            shard.update(UpdateOperation.delete_points([summary_id]))
            for start in range(0, len(chunks), self._batch):
                end = start + self._batch
                batch = zip(chunks[start:end], vectors[start:end], strict=True)
                points = [
                    Point(
                        chunk.id,
                        {DENSE: list(vector), SPARSE: self._keywords.document(chunk.text)},
                        chunk_payload(document, chunk, created_at),
                    )
                    for chunk, vector in batch
                ]
                shard.update(UpdateOperation.upsert_points(points))
            stale = Filter(
                must=[equals(DOCUMENT_ID, document.id), equals(KIND, CHUNK)],
                must_not=[HasIdCondition({chunk.id for chunk in chunks})],
            )
            shard.update(UpdateOperation.delete_points_by_filter(stale))
            summary = summary_payload(document, len(chunks), created_at)
            shard.update(UpdateOperation.upsert_points([Point(summary_id, {}, summary)]))

        await self._shard.run(write)

    async def search(self, query: SearchQuery) -> list[DocumentHit]:
        # No `kind: chunk` condition: summaries have no vector, no vector search finds
        # them, and each condition costs a filtered search (~0.3 ms at 100k chunks).
        where = Filter(
            must=[
                _visible_to(query.tenant),
                *edge_conditions(query.filter),
            ]
        )
        direction = unit(query.vector)

        def run(shard: EdgeShard) -> list[DocumentHit]:
            request = edge_search_request(
                query.mode,
                direction,
                self._keywords.query(query.text),
                limit=read_limit(query),
                depth=prefetch_depth(query.k),
                where=where,
                score_threshold=query.threshold if query.mode is SearchMode.DENSE else None,
            )
            found = ((p.payload or {}, p.score, _dense(p)) for p in shard.query(request))
            return best_hits(query, direction, found)

        return await self._shard.run(run)

    async def list_documents(
        self,
        tenant: str,
        limit: int,
        after: str | None = None,
        where: DocumentListFilter | None = None,
    ) -> Page[DocumentSummary]:
        visible = Filter(must=[equals(KIND, SUMMARY), _visible_to(tenant)])

        def scan(shard: EdgeShard) -> list[DocumentSummary]:
            return [summary_from(r.payload or {}) for r in _scroll(shard, visible)]

        return page_of(await self._shard.run(scan), limit, after, where)

    async def get_document(
        self, tenant: str, document_id: str, *, with_chunks: bool = False
    ) -> DocumentDetail | None:
        def owned(kind: str) -> Filter:
            return Filter(
                must=[equals(TENANT, tenant), equals(DOCUMENT_ID, document_id), equals(KIND, kind)]
            )

        def read(shard: EdgeShard) -> DocumentDetail | None:
            summaries = [r.payload or {} for r in _scroll(shard, owned(SUMMARY))]
            if not summaries or not with_chunks:
                return detail_of(summaries, None)
            chunks = (chunk_from(str(r.id), r.payload or {}) for r in _scroll(shard, owned(CHUNK)))
            return detail_of(summaries, chunks)

        return await self._shard.run(read)

    async def delete(self, tenant: str, document_id: str) -> bool:
        owned = Filter(must=[equals(TENANT, tenant), equals(DOCUMENT_ID, document_id)])

        def remove(shard: EdgeShard) -> bool:
            if not shard.count(CountRequest(exact=True, filter=owned)):
                return False
            shard.update(UpdateOperation.delete_points_by_filter(owned))
            return True

        return await self._shard.run(remove)

    async def optimize(self) -> None:
        await self._shard.run(lambda shard: shard.optimize())

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            points = await self._shard.run(lambda shard: shard.info().points_count)
        except Exception as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        return ServiceHealth(
            self.health_name, Status.HEALTHY, _ms_since(started), f"embedded, {points} points"
        )

    async def close(self) -> None:
        await self._shard.close()


def _scroll(shard: EdgeShard, where: Filter) -> list[Record]:
    records: list[Record] = []
    offset = None
    while True:
        page, offset = shard.scroll(
            ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=where, with_payload=True)
        )
        records.extend(page)
        if offset is None:
            return records


def _dense(point: ScoredPoint) -> Sequence[float]:
    vectors = point.vector
    return cast("list[float]", vectors[DENSE]) if isinstance(vectors, dict) else []


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

"""The knowledge base on Qdrant, written once over a driver: the embedded default on a
Qdrant Edge shard (``QdrantEdgeIndex``) and production on a Qdrant server or cluster
(``QdrantServerIndex``) hold the same layout (``document_layout``) and answer the
same searches.

One collection holds every tenant's chunks (a dense cosine vector and a BM25 sparse
vector each) and one summary record per document (no vector, ``kind: document``), which
``replace`` writes last: a document whose ingest was cut short is never listed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict, Unpack

from qdrant_client import AsyncQdrantClient

from adapters.qdrant.edge import EdgeDriver
from adapters.qdrant.engine import (
    Collection,
    DeleteIds,
    DeleteWhere,
    IndexKind,
    KeywordEncoder,
    QdrantDriver,
    Retrievers,
    Search,
    StoredPoint,
    Upsert,
    Where,
    prefetch_depth,
    probe,
    unit,
)
from adapters.qdrant.server import ServerDriver
from adapters.vector.document_layout import (
    CHUNK,
    CREATED_AT,
    DOCUMENT_ID,
    FILTERED_FIELDS,
    HIT_FIELDS,
    KIND,
    METADATA_TERMS,
    SCOPE,
    SOURCE,
    SUMMARY,
    TENANT,
    best_hits,
    chunk_from,
    chunk_payload,
    detail_of,
    metadata_terms,
    page_of,
    read_limit,
    summary_from,
    summary_payload,
    summary_point_id,
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
from domain.health import ServiceHealth
from domain.search_filter import SearchFilter

# Only what queries filter on (each index costs an Edge shard's creation ~150 ms of fsyncs).
INDEXES: dict[str, IndexKind] = {
    field: "tenant" if field == TENANT else "keyword" for field in (*FILTERED_FIELDS, SOURCE)
}
_RETRIEVERS: dict[SearchMode, Retrievers] = {
    SearchMode.DENSE: "dense",
    SearchMode.KEYWORD: "keyword",
    SearchMode.HYBRID: "hybrid",
}


def _visible_to(tenant: str) -> tuple[tuple[str, str], ...]:
    """A tenant's own documents and the global ones (``any_of``)."""
    return ((TENANT, tenant), (SCOPE, Scope.GLOBAL.value))


def _matching(tenant: str, conditions: SearchFilter) -> Where:
    """The chunks a search for ``tenant`` may find that meet ``conditions``. No
    ``kind: chunk`` condition: summaries have no vector, so no search finds them, and a
    condition costs a filtered search (~0.3 ms at 100k chunks)."""
    equals: list[tuple[str, str | int]] = [
        (METADATA_TERMS, term) for term in metadata_terms(conditions.metadata)
    ]
    equals += conditions.exact.items()
    ranges = ((CREATED_AT, conditions.created_at),) if conditions.created_at else ()
    return Where(equals=tuple(equals), any_of=_visible_to(tenant), ranges=ranges)


class IndexOptions(TypedDict, total=False):
    health_name: str
    keywords: KeywordEncoder | None
    now: Callable[[], float]
    upsert_batch: int


class QdrantDocumentIndex:
    """The ``DocumentIndex`` port over one Qdrant collection, whatever the engine."""

    def __init__(
        self,
        driver: QdrantDriver,
        dimension: int,
        *,
        health_name: str = "qdrant",
        keywords: KeywordEncoder | None = None,
        now: Callable[[], float] = time.time,
        upsert_batch: int = 256,
    ) -> None:
        self.dimension = dimension
        self.health_name = health_name
        self._driver = driver
        self._keywords = keywords or KeywordEncoder()
        self._now = now
        self._batch = upsert_batch

    async def replace(
        self, document: Document, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        created_at = self._now()

        def to_points() -> list[StoredPoint]:
            return [
                StoredPoint(
                    chunk.id,
                    vector,
                    self._keywords.document(chunk.text),
                    chunk_payload(document, chunk, created_at),
                )
                for chunk, vector in zip(chunks, vectors, strict=True)
            ]

        # BM25 over many chunks is CPU work: off the event loop.
        points = await asyncio.to_thread(to_points)
        summary_id = summary_point_id(document.id)
        stale = Where(
            equals=((DOCUMENT_ID, document.id), (KIND, CHUNK)),
            not_ids=tuple(chunk.id for chunk in chunks),
        )
        summary = summary_payload(document, len(chunks), created_at)
        await self._driver.write(
            [
                # Unlisted while it changes: a replace cut short leaves no summary behind.
                DeleteIds([summary_id]),
                *(
                    Upsert(points[start : start + self._batch])
                    for start in range(0, len(points), self._batch)
                ),
                DeleteWhere(stale),
                Upsert([StoredPoint(summary_id, None, None, summary)]),
            ],
            action=f"store the document {document.id!r}",
        )

    async def search(self, query: SearchQuery) -> list[DocumentHit]:
        direction = unit(query.vector)
        dense_only = query.mode is SearchMode.DENSE
        search = Search(
            dense=direction,
            sparse=self._keywords.query(query.text),
            where=_matching(query.tenant, SearchFilter.parse(query.filter)),
            limit=read_limit(query),
            depth=prefetch_depth(query.k),
            retrievers=_RETRIEVERS[query.mode],
            score_threshold=query.threshold if dense_only else None,
            fields=HIT_FIELDS,
            # A dense search's score is the cosine; other hits are scored by it here.
            with_dense=not dense_only,
        )
        found = await self._driver.search(search, action="search the documents")
        return best_hits(query, direction, ((f.payload, f.score, f.dense) for f in found))

    async def list_documents(
        self,
        tenant: str,
        limit: int,
        after: str | None = None,
        where: DocumentListFilter | None = None,
    ) -> Page[DocumentSummary]:
        visible = Where(equals=((KIND, SUMMARY),), any_of=_visible_to(tenant))
        payloads = await self._driver.scroll(visible, limit=None, action="list the documents")
        return page_of((summary_from(p) for p in payloads), limit, after, where)

    async def get_document(
        self, tenant: str, document_id: str, *, with_chunks: bool = False
    ) -> DocumentDetail | None:
        def owned(kind: str) -> Where:
            return Where(equals=((TENANT, tenant), (DOCUMENT_ID, document_id), (KIND, kind)))

        action = f"read the document {document_id!r}"
        summaries = await self._driver.scroll(owned(SUMMARY), limit=1, action=action)
        if not summaries or not with_chunks:
            return detail_of(summaries, None)
        chunks = await self._driver.scroll(owned(CHUNK), limit=None, action=action)
        return detail_of(summaries, (chunk_from(p) for p in chunks))

    async def delete(self, tenant: str, document_id: str) -> bool:
        owned = Where(equals=((TENANT, tenant), (DOCUMENT_ID, document_id)))
        removed = await self._driver.remove(owned, action=f"delete the document {document_id!r}")
        return removed > 0

    async def optimize(self) -> None:
        await self._driver.optimize()

    async def check(self) -> ServiceHealth:
        return await probe(self._driver, self.health_name)

    async def close(self) -> None:
        await self._driver.close()


class QdrantEdgeIndex(QdrantDocumentIndex):
    """Every tenant's documents in one Qdrant Edge shard under ``directory`` (the
    embedded default), opened on first use; ``close()`` flushes and closes it."""

    def __init__(self, directory: Path, dimension: int, **options: Unpack[IndexOptions]) -> None:
        self.directory = Path(directory)
        collection = Collection("documents", dimension, INDEXES)
        driver = EdgeDriver(self.directory, collection, unavailable=IndexUnavailable)
        super().__init__(driver, dimension, **options)


class QdrantServerIndex(QdrantDocumentIndex):
    """Documents in ``collection`` of a Qdrant server; ``client`` is built (from
    ``QDRANT_URL`` / ``QDRANT_API_KEY``) and closed by the caller. The collection is
    created on first use."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        dimension: int,
        *,
        collection: str = "documents",
        **options: Unpack[IndexOptions],
    ) -> None:
        self.collection = collection
        layout = Collection(collection, dimension, INDEXES)
        driver = ServerDriver(client, layout, unavailable=IndexUnavailable)
        super().__init__(driver, dimension, **options)

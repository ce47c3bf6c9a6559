"""What the Qdrant adapters share.

* ``EdgeShardThread``: a Qdrant Edge shard on local disk, opened on first use and driven
  from ONE dedicated thread: the engine is synchronous and CPU-bound and a shard is not
  known to be thread-safe, so the event loop never runs it and two calls never overlap.
* Edge filters and the search request: dense, keyword (BM25), or both as two prefetches
  fused by reciprocal rank.
* ``KeywordEncoder``: BM25 term weights computed in the gateway with Edge's ``Bm25``, for
  an Edge shard and a Qdrant server alike (the store applies IDF: ``Modifier.Idf``).
* The document layout both document adapters store (payload, summary records, hits), so
  the embedded and the server index hold and answer exactly the same thing.
"""

from __future__ import annotations

import asyncio
import json
import math
import operator
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from qdrant_edge import (
    Bm25,
    Bm25Config,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    Fusion,
    KeywordIndexParams,
    MatchValue,
    Modifier,
    PayloadSchemaType,
    Prefetch,
    Query,
    QueryRequest,
    RangeFloat,
    SparseVector,
    UpdateOperation,
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
    chunk_id_for,
)
from domain.errors import BackendUnavailable, GatewayError, IndexUnavailable
from domain.search_filter import SearchFilter

T = TypeVar("T")

DENSE = "dense"
SPARSE = "bm25"
# Qdrant's own default constant: what a server's FusionQuery(RRF) uses, so the embedded and
# the server index fuse alike. Small k favours hits that one retriever ranks first.
RRF_K = 2


def prefetch_depth(k: int) -> int:
    """Candidates each retriever hands to the fusion (and how many fused hits are read
    when a threshold may drop some): deep enough for a hit that only one retriever
    ranks well to reach the top ``k``."""
    return max(4 * k, 20)


# --- the Edge engine ---------------------------------------------------------------------


def shard_config(dimension: int) -> EdgeConfig:
    """A named cosine vector of ``dimension`` and a BM25 sparse vector weighted by IDF."""
    return EdgeConfig(
        vectors={DENSE: EdgeVectorParams(size=dimension, distance=Distance.Cosine)},
        sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
    )


PayloadIndex = PayloadSchemaType | KeywordIndexParams


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


def edge_conditions(conditions: Mapping[str, Any]) -> list[FieldCondition]:
    """The Edge conditions of a search filter: user metadata and system fields."""
    where = SearchFilter.parse(conditions)
    found = [equals(METADATA_TERMS, term) for term in metadata_terms(where.metadata)]
    found += [equals(key, value) for key, value in where.exact.items()]
    if where.created_at:
        found.append(FieldCondition(key=CREATED_AT, range=RangeFloat(**where.created_at)))
    return found


def edge_search_request(
    mode: SearchMode,
    dense: Sequence[float],
    sparse: SparseVector,
    *,
    limit: int,
    depth: int,
    where: Filter,
    score_threshold: float | None = None,
) -> QueryRequest:
    """Dense scores are cosines; keyword and hybrid hits carry their dense vector so that
    the caller can score them by cosine too (fusion only orders them). Hits carry the
    payload fields a ``DocumentHit`` is made of."""
    nearest_dense = Query.Nearest(list(dense), using=DENSE)
    nearest_sparse = Query.Nearest(sparse, using=SPARSE)
    if mode is SearchMode.DENSE:
        return QueryRequest(
            limit=limit,
            query=nearest_dense,
            filter=where,
            with_payload=list(HIT_FIELDS),
            score_threshold=score_threshold,
        )
    if mode is SearchMode.KEYWORD:
        return QueryRequest(
            limit=limit,
            query=nearest_sparse,
            filter=where,
            with_payload=list(HIT_FIELDS),
            with_vector=[DENSE],
        )
    return QueryRequest(
        limit=limit,
        prefetches=[
            Prefetch(limit=depth, query=nearest_dense, filter=where),
            Prefetch(limit=depth, query=nearest_sparse, filter=where),
        ],
        query=cast("Fusion", Fusion.Rrf(k=RRF_K)),  # the 0.9 stubs type a fusion as Fusion
        filter=where,
        with_payload=list(HIT_FIELDS),
        with_vector=[DENSE],
    )


class KeywordEncoder:
    """BM25 in the gateway: a document's terms weighted by saturated, length-normalised
    frequency (Edge's ``Bm25``: k=1.2, b=0.75, English stemming and stopwords), a query's
    terms by 1; the store multiplies by each term's IDF at search time."""

    def __init__(self, config: Bm25Config | None = None) -> None:
        self._bm25 = Bm25(config)

    def document(self, text: str) -> SparseVector:
        return self._bm25.embed_document(text)

    def query(self, text: str) -> SparseVector:
        return self._bm25.embed_query(text)


def unit(vector: Sequence[float]) -> list[float]:
    norm = math.hypot(*vector)
    return [x / norm for x in vector] if norm else list(vector)


def cosine(unit_query: Sequence[float], stored: Sequence[float]) -> float:
    """Cosine of a stored vector to an already unit-length query, within [-1, 1]."""
    norm = math.hypot(*stored)
    if not norm:
        return 0.0
    dot: float = sum(map(operator.mul, unit_query, stored))
    return max(-1.0, min(1.0, dot / norm))


# --- the document layout -----------------------------------------------------------------

KIND, CHUNK, SUMMARY = "kind", "chunk", "document"
CHUNK_ID = "chunk_id"
TENANT, SCOPE, DOCUMENT_ID, SOURCE = "tenant", "scope", "document_id", "source"
CHUNK_INDEX, TEXT, METADATA, CREATED_AT, CHUNK_COUNT = (
    "chunk_index",
    "text",
    "metadata",
    "created_at",
    "chunk_count",
)
METADATA_TERMS = "metadata_terms"
START, END, HEADING_PATH, PAGE = "start", "end", "heading_path", "page"
FILTERED_FIELDS = (KIND, TENANT, SCOPE, DOCUMENT_ID, METADATA_TERMS)  # keyword-indexed
# What a search reads.
HIT_FIELDS = (TEXT, METADATA, DOCUMENT_ID, SOURCE, CHUNK_INDEX, CREATED_AT, START, END,
              HEADING_PATH, PAGE)  # fmt: skip
GLOBAL_OWNER = "*"  # the tenant of a global document: only a delete for "*" removes it
_SUMMARY_IDS = uuid.UUID("0b9f3c54-7f7e-4c0e-8a8e-5d1c9a3f2e61")


def owner_of(document: Document) -> str:
    return GLOBAL_OWNER if document.scope is Scope.GLOBAL else document.tenant


def summary_point_id(document_id: str) -> str:
    """The point holding a document's summary: a UUID of its own namespace, so that it is
    stable and apart from the chunks' ids."""
    return str(uuid.uuid5(_SUMMARY_IDS, document_id))


def chunk_payload(document: Document, chunk: Chunk, created_at: float) -> dict[str, Any]:
    return {
        KIND: CHUNK,
        TENANT: owner_of(document),
        SCOPE: document.scope.value,
        DOCUMENT_ID: document.id,
        SOURCE: document.source,
        CHUNK_INDEX: chunk.index,
        TEXT: chunk.text,
        START: chunk.start,
        END: chunk.end,
        HEADING_PATH: list(chunk.heading_path),
        PAGE: chunk.page,
        METADATA: dict(document.metadata),
        METADATA_TERMS: metadata_terms(document.metadata),
        CREATED_AT: created_at,
    }


def chunk_from(point_id: str, payload: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=point_id,
        document_id=payload[DOCUMENT_ID],
        index=payload[CHUNK_INDEX],
        text=payload[TEXT],
        start=payload.get(START, 0),
        end=payload.get(END, 0),
        heading_path=tuple(payload.get(HEADING_PATH) or ()),
        page=payload.get(PAGE),
    )


def detail_of(
    summaries: Iterable[Mapping[str, Any]], chunks: Iterable[Chunk] | None
) -> DocumentDetail | None:
    """The read-back of a document from its summary payload (none: not complete) and
    its chunks in any order."""
    found = next(iter(summaries), None)
    if found is None:
        return None
    ordered = None if chunks is None else tuple(sorted(chunks, key=lambda c: c.index))
    return DocumentDetail(summary_from(found), ordered)


def summary_payload(document: Document, chunk_count: int, created_at: float) -> dict[str, Any]:
    return {
        KIND: SUMMARY,
        TENANT: owner_of(document),
        SCOPE: document.scope.value,
        DOCUMENT_ID: document.id,
        SOURCE: document.source,
        CHUNK_COUNT: chunk_count,
        METADATA: dict(document.metadata),
        CREATED_AT: created_at,
    }


def _term(key: str, value: object) -> str:
    return json.dumps([key, value], ensure_ascii=False, separators=(",", ":"))


def metadata_terms(metadata: Mapping[str, Any]) -> list[str]:
    """One keyword per scalar metadata entry, typed (``true``, ``1``, ``1.0`` and ``"1"``
    differ) and indexed, which a filter matches exactly. Not ``metadata.<key>`` paths: a
    key may hold a dot, and Edge 0.9 reads ``MatchValue(False)`` as the integer 0."""
    return [
        _term(key, value)
        for key, value in metadata.items()
        if isinstance(value, str | bool | int | float)
    ]


def filter_terms(conditions: Mapping[str, Any]) -> list[str]:
    """The ``METADATA_TERMS`` a chunk must all hold to match the user metadata of
    ``conditions`` (the system fields are matched on their own payload fields)."""
    return metadata_terms(SearchFilter.parse(conditions).metadata)


def hit_from(
    payload: Mapping[str, Any], score: float, rank_score: float | None = None
) -> DocumentHit:
    """The chunk's text; its metadata is the document's, plus where the chunk comes
    from (the fields a filter can name)."""
    metadata = {
        **payload.get(METADATA, {}),
        DOCUMENT_ID: payload[DOCUMENT_ID],
        SOURCE: payload[SOURCE],
        CHUNK_INDEX: payload[CHUNK_INDEX],
        CHUNK_ID: chunk_id_for(payload[DOCUMENT_ID], payload[CHUNK_INDEX]),
        START: payload.get(START, 0),
        END: payload.get(END, 0),
        HEADING_PATH: list(payload.get(HEADING_PATH) or ()),
        PAGE: payload.get(PAGE),
    }
    if CREATED_AT in payload:
        metadata[CREATED_AT] = int(payload[CREATED_AT])
    return DocumentHit(text=payload[TEXT], score=score, metadata=metadata, rank_score=rank_score)


def read_limit(query: SearchQuery) -> int:
    """How many hits to read from the store: ``k``; or, when the store ranked them by
    fusion or BM25 and a threshold on their cosine may drop some, enough to leave ``k``."""
    if query.mode is SearchMode.DENSE or query.threshold is None:
        return query.k
    return prefetch_depth(query.k)


def best_hits(
    query: SearchQuery,
    unit_query: Sequence[float],
    found: Iterable[tuple[Mapping[str, Any], float, Sequence[float]]],
) -> list[DocumentHit]:
    """The first ``k`` of the store's ``(payload, score, dense vector)`` in its order,
    each with the store's score (what ordered it) and its cosine to the query (a dense
    search's own score is that cosine), those under the threshold dropped."""
    hits = []
    for payload, score, stored in found:
        if query.mode is SearchMode.DENSE:
            similarity = score = min(score, 1.0)
        else:
            similarity = min(cosine(unit_query, stored), 1.0)
        if query.threshold is None or similarity >= query.threshold:
            hits.append(hit_from(payload, similarity, score))
            if len(hits) == query.k:
                break
    return hits


def summary_from(payload: Mapping[str, Any]) -> DocumentSummary:
    return DocumentSummary(
        id=payload[DOCUMENT_ID],
        source=payload[SOURCE],
        tenant=payload[TENANT],
        scope=Scope(payload[SCOPE]),
        chunk_count=payload[CHUNK_COUNT],
        created_at=payload[CREATED_AT],
        metadata=payload.get(METADATA, {}),
    )


def page_of(
    summaries: Iterable[DocumentSummary],
    limit: int,
    after: str | None,
    where: DocumentListFilter | None = None,
) -> Page[DocumentSummary]:
    """Point ids are UUIDs, not document ids, so a store cannot page in id order: the
    summaries a tenant sees are read, filtered and ordered here."""
    ordered = sorted(
        (
            s
            for s in summaries
            if (after is None or s.id > after) and (where is None or where.admits(s))
        ),
        key=lambda s: s.id,
    )
    return Page(data=ordered[:limit], has_more=len(ordered) > limit)

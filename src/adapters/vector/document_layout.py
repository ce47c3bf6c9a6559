"""The document layout the Qdrant document index stores on every engine: the chunk and
summary payloads, the metadata terms a filter matches, and how hits and summaries are
read back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.qdrant.engine import cosine, prefetch_depth
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
from domain.search_filter import SearchFilter

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


def chunk_from(payload: Mapping[str, Any]) -> Chunk:
    """A stored chunk (its id is its document's n-th chunk id: ``chunk_id_for``)."""
    return Chunk(
        id=chunk_id_for(payload[DOCUMENT_ID], payload[CHUNK_INDEX]),
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
    """The first ``k`` of the store's ``(payload, score, dense vector)`` by score, each
    with the store's score (what ordered it) and its cosine to the query (a dense
    search's own score is that cosine), those under the threshold dropped. Equal scores
    (fused ranks tie exactly when two chunks swap places between retrievers) come in
    document and chunk order, not in whatever order the engine broke the tie: the same
    question gets the same passages, numbered the same, every time."""
    ranked = sorted(found, key=lambda f: (-f[1], f[0][DOCUMENT_ID], f[0][CHUNK_INDEX]))
    hits = []
    for payload, score, stored in ranked:
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

"""``FakeDocumentIndex``: the DocumentIndex port in memory, searched by brute force.

It answers like the Qdrant adapters: dense search ranks chunks by cosine; keyword search
by BM25 (k1 1.2, b 0.75, average length 256, IDF over every stored chunk, as a sparse
vector with Qdrant's IDF modifier scores it) on lowercase words; hybrid search fuses the
two candidate lists by reciprocal rank (constant 2, Qdrant's). Every hit's score is its
cosine to the query vector, its rank_score what ordered it. A filter matches user
metadata exactly, and ``source``, ``document_id`` and a ``created_at`` range. Set
``down`` to make every call fail with ``IndexUnavailable``."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

RRF_K = 2
_K1, _B, _AVG_LEN = 1.2, 0.75, 256.0
_WORD = re.compile(r"[a-z0-9]+")
# fmt: off
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it",
    "of", "on", "or", "that", "the", "this", "to", "was", "what", "with",
})
# fmt: on


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def _depth(k: int) -> int:
    return max(4 * k, 20)


@dataclass(frozen=True, slots=True)
class _Stored:
    chunk: Chunk
    vector: tuple[float, ...]
    terms: Counter[str]
    owner: str
    document: Document
    created_at: float


class FakeDocumentIndex:
    def __init__(self) -> None:
        self.chunks: dict[str, _Stored] = {}
        self.summaries: dict[str, DocumentSummary] = {}
        self.down = False
        self.optimized = 0

    def _available(self) -> None:
        if self.down:
            raise IndexUnavailable("the fake document index is down")

    async def replace(
        self, document: Document, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        self._available()
        owner = "*" if document.scope is Scope.GLOBAL else document.tenant
        self.summaries.pop(document.id, None)
        now = time.time()
        for chunk, vector in zip(chunks, vectors, strict=True):
            terms = Counter(_terms(chunk.text))
            self.chunks[chunk.id] = _Stored(chunk, tuple(vector), terms, owner, document, now)
        fresh = {chunk.id for chunk in chunks}
        for id_, stored in list(self.chunks.items()):
            if stored.document.id == document.id and id_ not in fresh:
                del self.chunks[id_]
        self.summaries[document.id] = DocumentSummary(
            id=document.id,
            source=document.source,
            tenant=owner,
            scope=document.scope,
            chunk_count=len(chunks),
            created_at=now,
            metadata=dict(document.metadata),
        )

    def _visible(self, stored: _Stored, query: SearchQuery, where: SearchFilter) -> bool:
        if stored.owner != query.tenant and stored.document.scope is not Scope.GLOBAL:
            return False
        metadata = stored.document.metadata
        system = {"source": stored.document.source, "document_id": stored.document.id}
        return (
            all(
                key in metadata and type(metadata[key]) is type(value) and metadata[key] == value
                for key, value in where.metadata.items()
            )
            and all(system[key] == value for key, value in where.exact.items())
            and where.admits(stored.created_at)
        )

    def _cosine(self, stored: _Stored, query: SearchQuery) -> float:
        dot = sum(a * b for a, b in zip(stored.vector, query.vector, strict=True))
        norms = math.hypot(*stored.vector) * math.hypot(*query.vector)
        return min(1.0, dot / norms) if norms else 0.0

    def _bm25(self, stored: _Stored, query_terms: set[str]) -> float:
        total = len(self.chunks)
        length = sum(stored.terms.values())
        score = 0.0
        for term in query_terms & stored.terms.keys():
            df = sum(1 for s in self.chunks.values() if term in s.terms)
            idf = math.log((total - df + 0.5) / (df + 0.5) + 1)
            tf = stored.terms[term]
            score += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / _AVG_LEN))
        return score

    async def search(self, query: SearchQuery) -> list[DocumentHit]:
        self._available()
        where = SearchFilter.parse(query.filter)
        visible = [s for s in self.chunks.values() if self._visible(s, query, where)]
        cosines = {s.chunk.id: self._cosine(s, query) for s in visible}
        depth = _depth(query.k)
        dense = sorted(visible, key=lambda s: -cosines[s.chunk.id])[:depth]
        words = set(_terms(query.text))
        keyword_scores = {s.chunk.id: self._bm25(s, words) for s in visible}
        keyword = sorted(
            (s for s in visible if keyword_scores[s.chunk.id] > 0),
            key=lambda s: -keyword_scores[s.chunk.id],
        )[:depth]
        if query.mode is SearchMode.DENSE:
            ranked, order = dense, cosines
        elif query.mode is SearchMode.KEYWORD:
            ranked, order = keyword, keyword_scores
        else:
            fused: dict[str, float] = {}
            for candidates in (dense, keyword):
                for position, stored in enumerate(candidates):
                    fused[stored.chunk.id] = fused.get(stored.chunk.id, 0.0) + 1 / (
                        position + RRF_K
                    )
            ranked = sorted((self.chunks[i] for i in fused), key=lambda s: -fused[s.chunk.id])
            order = fused
        hits = []
        for stored in ranked:
            score = cosines[stored.chunk.id]
            if query.threshold is None or score >= query.threshold:
                hits.append(
                    DocumentHit(
                        stored.chunk.text, score, self._hit_metadata(stored),
                        rank_score=order[stored.chunk.id],
                    )
                )  # fmt: skip
        return hits[: query.k]

    @staticmethod
    def _hit_metadata(stored: _Stored) -> Mapping[str, Any]:
        return {
            **stored.document.metadata,
            "document_id": stored.document.id,
            "source": stored.document.source,
            "chunk_index": stored.chunk.index,
            "chunk_id": stored.chunk.id,
            "start": stored.chunk.start,
            "end": stored.chunk.end,
            "heading_path": list(stored.chunk.heading_path),
            "page": stored.chunk.page,
            "created_at": int(stored.created_at),
        }

    async def list_documents(
        self,
        tenant: str,
        limit: int,
        after: str | None = None,
        where: DocumentListFilter | None = None,
    ) -> Page[DocumentSummary]:
        self._available()
        visible = sorted(
            (
                s
                for s in self.summaries.values()
                if (s.tenant == tenant or s.scope is Scope.GLOBAL)
                and (after is None or s.id > after)
                and (where is None or where.admits(s))
            ),
            key=lambda s: s.id,
        )
        return Page(data=visible[:limit], has_more=len(visible) > limit)

    async def get_document(
        self, tenant: str, document_id: str, *, with_chunks: bool = False
    ) -> DocumentDetail | None:
        self._available()
        summary = self.summaries.get(document_id)
        if summary is None or summary.tenant != tenant:
            return None
        if not with_chunks:
            return DocumentDetail(summary)
        chunks = sorted(
            (s.chunk for s in self.chunks.values() if s.document.id == document_id),
            key=lambda c: c.index,
        )
        return DocumentDetail(summary, tuple(chunks))

    async def delete(self, tenant: str, document_id: str) -> bool:
        self._available()
        owned = [
            id_
            for id_, s in self.chunks.items()
            if s.owner == tenant and s.document.id == document_id
        ]
        summary = self.summaries.get(document_id)
        if summary is not None and summary.tenant != tenant:
            summary = None
        if not owned and summary is None:
            return False
        for id_ in owned:
            del self.chunks[id_]
        if summary is not None:
            del self.summaries[document_id]
        return True

    async def optimize(self) -> None:
        self._available()
        self.optimized += 1

    async def check(self) -> ServiceHealth:
        if self.down:
            return ServiceHealth("qdrant", Status.UNHEALTHY, 0.0, "the fake index is down")
        return ServiceHealth("qdrant", Status.HEALTHY, 0.0)

"""The knowledge base: documents, their chunks, and what a search finds."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

T = TypeVar("T")

K_RANGE = (1, 10)


class Scope(Enum):
    TENANT = "tenant"  # visible to the tenant that ingested it
    GLOBAL = "global"  # visible to every tenant (admin only)


class SearchMode(Enum):
    HYBRID = "hybrid"  # dense + keyword (BM25), fused by reciprocal rank
    DENSE = "dense"
    KEYWORD = "keyword"


_NAMESPACE = uuid.UUID("6f1c7f0e-2b1a-4c55-9d43-3c2f0f7b9a10")


def control_characters(text: str) -> list[str]:
    """The control characters in ``text`` (C0, DEL and C1), as ``\\xNN``: a document's
    source is shown in answers, listings and log lines, so none may hide in it."""
    found = {c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F}
    return [f"\\x{ord(c):02x}" for c in sorted(found)]


def document_id_for(tenant: str, scope: Scope, source: str) -> str:
    """Stable: the same source ingested again by the same tenant is the same document."""
    owner = "*" if scope is Scope.GLOBAL else tenant
    digest = hashlib.sha256(f"{owner}\x00{source}".encode()).hexdigest()
    return f"doc_{digest[:24]}"


def chunk_id_for(document_id: str, index: int) -> str:
    """A UUID (what Qdrant accepts as a point id), stable for a document's n-th chunk."""
    return str(uuid.uuid5(_NAMESPACE, f"{document_id}#{index}"))


@dataclass(frozen=True, slots=True)
class Document:
    """A document as ingested: its chunks are derived from ``text`` by chunking."""

    id: str
    tenant: str
    source: str
    text: str
    scope: Scope = Scope.TENANT
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    document_id: str
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class DocumentSummary:
    id: str
    source: str
    tenant: str
    scope: Scope
    chunk_count: int
    created_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DocumentHit:
    """``score`` is the cosine similarity of the chunk to the query; ``rank_score`` the
    store's score that put the hit where it is in the list (the fused reciprocal-rank
    score in hybrid mode, BM25 in keyword mode, the cosine in dense mode; None: the
    cosine)."""

    text: str
    score: float
    metadata: Mapping[str, Any]
    rank_score: float | None = None

    @property
    def ordered_by(self) -> float:
        return self.score if self.rank_score is None else self.rank_score


@dataclass(frozen=True, slots=True)
class SearchQuery:
    tenant: str
    text: str
    vector: tuple[float, ...]
    k: int = 3
    threshold: float | None = None
    filter: Mapping[str, Any] = field(default_factory=dict)
    mode: SearchMode = SearchMode.HYBRID


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, as the API's lists are paged (``limit`` and ``after``)."""

    data: list[T]
    has_more: bool

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


def file_name_problem(name: str) -> str | None:
    """Why an uploaded file's name cannot be a document's source, if it cannot: a
    control character (a newline would forge log lines), a ``..`` segment or an
    absolute path (a source names a place in the tenant's namespace, never outside)."""
    hidden = control_characters(name)
    if hidden:
        return f"its name has control characters ({', '.join(hidden)})"
    segments = name.replace("\\", "/").split("/")
    if ".." in segments:
        return "its name has a `..` path segment"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "its name is an absolute path"
    return None


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
    # Where each page starts in ``text`` (a PDF's pages; empty: the text has no pages).
    page_starts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """``start``/``end``: the span of the document's text the chunk is cut from (its
    overlap with the chunk before not counted); ``heading_path``: the headings it sits
    under, outermost first; ``page``: the page its span starts on (1-based, None when
    the document has no pages)."""

    id: str
    document_id: str
    index: int
    text: str
    start: int = 0
    end: int = 0
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """What a file reader makes of a file: markdown-like text (headings as ``#`` lines,
    tables as markdown tables), where its pages start, and the format it was read as."""

    text: str
    format: str
    page_starts: tuple[int, ...] = ()


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
class DocumentDetail:
    """A document as it can be read back: its summary and, when asked for, its chunks
    in order."""

    summary: DocumentSummary
    chunks: tuple[Chunk, ...] | None = None


@dataclass(frozen=True, slots=True)
class DocumentListFilter:
    """``source_prefix``: sources that start with it; ``metadata``: exact values."""

    source_prefix: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def admits(self, summary: DocumentSummary) -> bool:
        if self.source_prefix and not summary.source.startswith(self.source_prefix):
            return False
        return all(
            key in summary.metadata and _as_query_text(summary.metadata[key]) == str(value)
            for key, value in self.metadata.items()
        )


def _as_query_text(value: Any) -> str:
    """A metadata value as a query string writes it (``true``, ``3``, ``docs``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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

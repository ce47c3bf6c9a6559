"""The knowledge base's vector store port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.documents import (
    Chunk,
    Document,
    DocumentDetail,
    DocumentHit,
    DocumentListFilter,
    DocumentSummary,
    Page,
    SearchQuery,
)
from domain.health import ServiceHealth


class DocumentIndex(Protocol):
    """Chunks with their dense vectors (and keyword vectors the adapter computes), kept
    per tenant. Errors: ``domain.errors.IndexUnavailable`` when the store cannot answer.

    Tenancy: a search or list for tenant T sees T's documents and global ones, never
    another tenant's; a delete for T removes only T's documents (global ones: tenant
    ``"*"``, admin only, decided by the caller)."""

    async def replace(
        self, document: Document, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store ``document`` as exactly these chunks, replacing any earlier version of
        it. Idempotent by chunk id; its summary is written last, so a document whose
        ingest was cut short is never listed as complete."""
        ...

    async def search(self, query: SearchQuery) -> list[DocumentHit]:
        """At most ``query.k`` hits, best first, with cosine scores >= the threshold
        (when set), matching every ``query.filter`` metadata key exactly."""
        ...

    async def list_documents(
        self,
        tenant: str,
        limit: int,
        after: str | None = None,
        where: DocumentListFilter | None = None,
    ) -> Page[DocumentSummary]:
        """Documents visible to ``tenant``, ordered by id, after the id ``after``, those
        ``where`` admits only."""
        ...

    async def get_document(
        self, tenant: str, document_id: str, *, with_chunks: bool = False
    ) -> DocumentDetail | None:
        """The document ``tenant`` owns (``"*"``: a global one) with this id, if it is
        complete (listed); with its chunks in order (their text, span, heading path and
        page) when ``with_chunks``."""
        ...

    async def delete(self, tenant: str, document_id: str) -> bool:
        """Remove the document and its chunks; False when ``tenant`` has no such one."""
        ...

    async def optimize(self) -> None:
        """Compact and index after bulk loads (a no-op where the store does it itself)."""
        ...

    async def check(self) -> ServiceHealth: ...

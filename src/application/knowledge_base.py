"""The knowledge base's use-cases: ingest, search, list and delete documents."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from application.fair_embedder import FairEmbedder
from domain.chunking import ChunkSize, TokenCounter, on_pages
from domain.documents import (
    K_RANGE,
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
    control_characters,
    document_id_for,
    file_name_problem,
)
from domain.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RequestTooLarge,
    UnsupportedDocument,
)
from domain.principal import Capability, Principal
from ports.document_index import DocumentIndex
from ports.document_reader import DocumentReader
from ports.embedder import Embedder

GLOBAL_OWNER = "*"
MAX_CHUNK_TOKENS = 512  # the embedders' input window


class Chunker(Protocol):
    """The domain's chunking, configured (its keywords: a request's own chunk size)."""

    def __call__(
        self, document_id: str, text: str, count_tokens: TokenCounter, /, **size: int
    ) -> list[Chunk]: ...


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    """A request's own chunk size and overlap (None: the gateway's)."""

    size: int | None = None
    overlap: int | None = None


@dataclass(frozen=True, slots=True)
class NewDocument:
    source: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    scope: Scope = Scope.TENANT
    size: ChunkOptions | None = None  # None: the gateway's configured chunk size
    page_starts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file on local disk; ``name`` (as the client sent it) is its document's source
    unless a ``source`` is given for it."""

    name: str
    path: Path
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    id: str
    source: str
    chunk_count: int
    replaced: bool = False  # a document with this source was there before


@dataclass(frozen=True, slots=True)
class Refused:
    """A file of an upload that was not ingested (the others were), and why."""

    source: str
    error: GatewayError


# A file's own fault: the other files of its upload go on. Anything else (a key that may
# not write, a store that is down) stops the whole upload.
_FILE_FAULTS = (InvalidRequest, UnsupportedDocument, RequestTooLarge)


class _Stopped(Exception):
    """Raised in the chunking thread once the ingest that wanted the chunks is gone."""


async def _stoppable(
    chunk: Callable[[TokenCounter], list[Chunk]], count: TokenCounter
) -> list[Chunk]:
    """``chunk(count)`` on a thread. A cancelled await does not stop a thread, so the
    thread's token counter (called for every piece) stops it instead: the thread ends
    within a piece, not minutes later holding the process's exit."""
    stop = threading.Event()

    def counted(text: str) -> int:
        if stop.is_set():
            raise _Stopped
        return count(text)

    try:
        return await asyncio.to_thread(chunk, counted)
    except asyncio.CancelledError:
        stop.set()
        raise


class KnowledgeBase:
    """Documents belong to the tenant of the key that ingested them; ``global`` ones
    (admin only) are visible to every tenant. A tenant never sees another's."""

    def __init__(
        self,
        embedder: Embedder,
        index: DocumentIndex,
        chunker: Chunker,
        *,
        max_document_chars: int = 2_000_000,
        max_chunks: int = 5_000,
        fair: FairEmbedder | None = None,
        threshold: float | None = None,
        mode: SearchMode = SearchMode.HYBRID,
        reader: DocumentReader | None = None,
        chunk_size: ChunkSize | None = None,
    ) -> None:
        self._reader = reader
        self._chunk_size = chunk_size or ChunkSize()
        self._embedder = embedder
        self._index = index
        self._chunker = chunker
        self._max_chars = max_document_chars
        self._max_chunks = max_chunks
        self._fair = fair or FairEmbedder(embedder)
        self._threshold = threshold
        self._mode = mode

    async def ingest(
        self, principal: Principal, documents: Sequence[NewDocument]
    ) -> list[Ingested]:
        """Each document replaces an earlier one with the same source (and scope)."""
        for number, new in enumerate(documents):
            self._check(principal, new, f"documents[{number}]" if len(documents) > 1 else "")
        results = []
        for new in documents:
            results.append(await self._ingest_one(principal, new))
        return results

    async def ingest_files(
        self,
        principal: Principal,
        files: Sequence[UploadedFile],
        *,
        metadata: Mapping[str, Any] | None = None,
        scope: Scope = Scope.TENANT,
        size: ChunkOptions | None = None,
    ) -> list[Ingested | Refused]:
        """Each file read by its content and ingested as a document; a file that cannot
        be is ``Refused`` (nothing of it stored) and the others go on."""
        if self._reader is None:
            raise UnsupportedDocument("this gateway reads no files")
        self._check_size(size)
        outcomes: list[Ingested | Refused] = []
        for file in files:
            source = file.source or file.name
            try:
                problem = file_name_problem(file.name)
                if problem:
                    raise InvalidRequest(f"{file.name!r}: {problem}", param="file")
                extracted = await self._reader.read(file.name, file.path)
                new = NewDocument(
                    source, extracted.text, dict(metadata or {}), scope, size, extracted.page_starts
                )
                self._check(principal, new, "")
                outcomes.append(await self._ingest_one(principal, new))
            except _FILE_FAULTS as exc:
                outcomes.append(Refused(source, exc))
        return outcomes

    def _resolved(self, options: ChunkOptions | None) -> ChunkSize | None:
        if options is None or (options.size is None and options.overlap is None):
            return None
        default = self._chunk_size
        return ChunkSize(
            default.max_tokens if options.size is None else options.size,
            default.overlap_tokens if options.overlap is None else options.overlap,
        )

    def _check_size(self, options: ChunkOptions | None) -> None:
        size = self._resolved(options)
        if size is None:
            return
        problem = size.problem()
        if problem is None and size.max_tokens > MAX_CHUNK_TOKENS:
            problem = f"chunk_size must be at most {MAX_CHUNK_TOKENS} tokens"
        if problem:
            param = "chunk_overlap" if "chunk_overlap" in problem else "chunk_size"
            raise InvalidRequest(problem, param=param)

    def _check(self, principal: Principal, new: NewDocument, where: str) -> None:
        prefix = f"{where}." if where else ""
        self._check_size(new.size)
        if not new.source.strip():
            raise InvalidRequest("a document needs a non-empty `source`", param=f"{prefix}source")
        hidden = control_characters(new.source)
        if hidden:
            raise InvalidRequest(
                f"the source {new.source!r} has control characters ({', '.join(hidden)})",
                param=f"{prefix}source",
            )
        if not new.text.strip():
            raise InvalidRequest("the document is empty", param=f"{prefix}text")
        if len(new.text) > self._max_chars:
            raise InvalidRequest(
                f"the document has {len(new.text)} characters; the limit is {self._max_chars}",
                param=f"{prefix}text",
            )
        # A key whose tenant is the global owner's name (reserved now, possible in a
        # store from before) would write global documents: admin keys only, whatever
        # the tenant.
        global_write = new.scope is Scope.GLOBAL or principal.tenant == GLOBAL_OWNER
        if global_write and not principal.may(Capability.WRITE_GLOBAL_DOCUMENTS):
            raise PermissionDenied("only admin keys may ingest documents with scope `global`")

    async def _ingest_one(self, principal: Principal, new: NewDocument) -> Ingested:
        owner = GLOBAL_OWNER if new.scope is Scope.GLOBAL else principal.tenant
        document = Document(
            id=document_id_for(principal.tenant, new.scope, new.source),
            tenant=owner,
            source=new.source,
            text=new.text,
            scope=new.scope,
            metadata=dict(new.metadata),
            page_starts=new.page_starts,
        )
        resolved = self._resolved(new.size)
        size = (
            {"max_tokens": resolved.max_tokens, "overlap_tokens": resolved.overlap_tokens}
            if resolved
            else {}
        )
        # Chunking a large document is CPU work (seconds for megabytes): off the event
        # loop, and stopped when the ingest is cancelled (a client gone, a shutdown).
        chunks = await _stoppable(
            lambda count: on_pages(
                self._chunker(document.id, document.text, count, **size), document.page_starts
            ),
            self._embedder.count_tokens,
        )
        if not chunks:
            raise InvalidRequest("the document has no text to index", param="text")
        if len(chunks) > self._max_chunks:
            raise InvalidRequest(
                f"{new.source}: the document makes {len(chunks)} chunks; the limit is "
                f"{self._max_chunks} (GATEWAY_MAX_DOCUMENT_CHUNKS)",
                param="text",
            )
        # The tenant's turn on the shared embedder: nothing is written until every chunk
        # has its vector, so an ingest cancelled here leaves the index as it was.
        vectors = await self._fair.embed(principal.tenant, [c.text for c in chunks])
        before = await self._index.get_document(owner, document.id, with_chunks=False)
        await self._index.replace(document, chunks, vectors)
        return Ingested(document.id, document.source, len(chunks), replaced=before is not None)

    async def search(
        self,
        principal: Principal,
        query: str,
        k: int,
        filter: Mapping[str, Any] | None = None,
        vector: Sequence[float] | None = None,
    ) -> list[DocumentHit]:
        """What the chat would see for ``query``. ``vector``: the query's embedding,
        when the caller already has it (it is computed once per chat turn)."""
        if not query.strip():
            raise InvalidRequest("the query is empty", param="query")
        if not K_RANGE[0] <= k <= K_RANGE[1]:
            raise InvalidRequest(f"k must be between {K_RANGE[0]} and {K_RANGE[1]}", param="k")
        if vector is None:
            vector = await self._embedder.embed_query(query)
        return await self._index.search(
            SearchQuery(
                tenant=principal.tenant,
                text=query,
                vector=tuple(vector),
                k=k,
                threshold=self._threshold,
                filter=dict(filter or {}),
                mode=self._mode,
            )
        )

    async def list(
        self,
        principal: Principal,
        limit: int,
        after: str | None = None,
        where: DocumentListFilter | None = None,
    ) -> Page[DocumentSummary]:
        """The documents the tenant sees (its own and global ones), by id; ``where``
        narrows them (a source prefix, metadata values)."""
        return await self._index.list_documents(principal.tenant, limit, after, where)

    async def get(
        self, principal: Principal, document_id: str, *, with_chunks: bool = False
    ) -> DocumentDetail:
        """A document the tenant sees (its own or a global one), with its chunks in
        order when asked; ``NotFound`` for any other id."""
        for owner in (principal.tenant, GLOBAL_OWNER):
            found = await self._index.get_document(owner, document_id, with_chunks=with_chunks)
            if found is not None:
                return found
        raise NotFound(f"no document {document_id!r}", param="id")

    async def delete(self, principal: Principal, document_id: str) -> None:
        if principal.tenant == GLOBAL_OWNER and not principal.may(
            Capability.WRITE_GLOBAL_DOCUMENTS
        ):
            raise PermissionDenied("only admin keys may delete global documents")
        if await self._index.delete(principal.tenant, document_id):
            return
        if principal.may(Capability.WRITE_GLOBAL_DOCUMENTS) and await self._index.delete(
            GLOBAL_OWNER, document_id
        ):
            return
        raise NotFound(f"no document {document_id!r}", param="id")

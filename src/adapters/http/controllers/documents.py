"""``/v1/documents``: the knowledge base (developer tier writes; standard reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from adapters.http.auth import requires
from adapters.http.disconnect import unless_disconnected
from adapters.http.errors import missing_field, status_and_body
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.upload_spool import SpooledForm, spooled_form
from adapters.http.wire import (
    ChunkOut,
    Deleted,
    DocumentDetailOut,
    DocumentIn,
    DocumentOut,
    DocumentPage,
    DocumentsIn,
    IngestedDocument,
    IngestedList,
    RefusedFile,
)
from application.knowledge_base import (
    ChunkOptions,
    Ingested,
    KnowledgeBase,
    NewDocument,
    Refused,
    UploadedFile,
)
from domain.documents import DocumentDetail, DocumentListFilter, DocumentSummary, Scope
from domain.errors import InvalidRequest
from domain.principal import Capability

_decode_one = msgspec.json.Decoder(DocumentIn).decode
_decode_many = msgspec.json.Decoder(DocumentsIn).decode
METADATA_PREFIX = "metadata."


def _size(chunk_size: int | None, chunk_overlap: int | None) -> ChunkOptions | None:
    if chunk_size is None and chunk_overlap is None:
        return None
    return ChunkOptions(chunk_size, chunk_overlap)


def _from_json(raw: bytes) -> tuple[list[NewDocument], bool]:
    """A document, or ``{"documents": [...]}``; the flag says it was a batch."""
    try:
        batch = raw.lstrip().startswith(b"{") and b'"documents"' in raw[:4096]
        parsed = _decode_many(raw).documents if batch else [_decode_one(raw)]
    except msgspec.ValidationError as exc:
        # msgspec ends its message with " - at `$.documents[0].text`" (or " - at `$`").
        text, at, where = str(exc).rpartition(" - at `$")
        path = where.rstrip("`").lstrip(".") if at else ""
        text = text if at else str(exc)
        missing = missing_field(text)
        if missing:
            path = f"{path}.{missing}" if path else missing
        raise InvalidRequest(str(exc), param=path or None) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"JSON is malformed: {exc}") from None
    documents = [
        NewDocument(
            d.source, d.text, dict(d.metadata), Scope(d.scope), _size(d.chunk_size, d.chunk_overlap)
        )
        for d in parsed
    ]
    return documents, batch


def _int_field(form: SpooledForm, name: str) -> int | None:
    value = form.fields.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer, not {value!r}", param=name) from None


def _upload_options(form: SpooledForm) -> tuple[Scope, dict[str, Any], ChunkOptions | None]:
    scope_field = form.fields.get("scope") or "tenant"
    if scope_field not in ("tenant", "global"):
        raise InvalidRequest("scope must be `tenant` or `global`", param="scope")
    try:
        metadata = msgspec.json.decode(form.fields.get("metadata") or "{}", type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidRequest("metadata must be a JSON object", param="metadata") from None
    size = _size(_int_field(form, "chunk_size"), _int_field(form, "chunk_overlap"))
    return Scope(scope_field), metadata, size


def _refused(outcome: Refused) -> tuple[int, RefusedFile]:
    status, body = status_and_body(outcome.error)
    message = str(body["error"]["message"])
    if outcome.source not in message:
        message = f"{outcome.source}: {message}"
    return status, RefusedFile(outcome.source, status, body["error"]["code"], message)


def _ingested(result: Ingested) -> IngestedDocument:
    return IngestedDocument(
        id=result.id,
        source=result.source,
        chunk_count=result.chunk_count,
        replaced=result.replaced,
    )


def _summary(s: DocumentSummary) -> DocumentOut:
    return DocumentOut(
        id=s.id,
        source=s.source,
        scope=s.scope.value,
        chunk_count=s.chunk_count,
        created_at=int(s.created_at),
        metadata=dict(s.metadata),
    )


def _detail(found: DocumentDetail) -> DocumentDetailOut:
    out = DocumentDetailOut(**msgspec.structs.asdict(_summary(found.summary)))
    if found.chunks is not None:
        out.chunks = [
            ChunkOut(
                id=c.id,
                text=c.text,
                page=c.page,
                heading_path=list(c.heading_path),
                start=c.start,
                end=c.end,
            )
            for c in found.chunks
        ]
    return out


class DocumentsController(Controller):
    path = "/v1/documents"
    tags = ["knowledge base"]
    guards = [admitted]

    @post(
        "",
        status_code=201,
        guards=[requires(Capability.WRITE_DOCUMENTS)],
        summary="Ingest documents",
        description=(
            'JSON `{"text", "source", "metadata"?, "scope"?, "chunk_size"?, '
            '"chunk_overlap"?}` or a batch `{"documents": [...]}`, or a multipart upload '
            "of files (fields `file`, one or more; optional `source` for a single file, "
            "`metadata` as JSON, `scope`, `chunk_size`, `chunk_overlap`). Files are read "
            "by their content: PDF (its text layer; no OCR), DOCX, HTML, markdown, UTF-8 "
            "text. An upload is streamed to disk, never held in memory, and refused with "
            "413 once it passes the limit (at once when its Content-Length does). A file "
            "that cannot be read is listed in `errors` with its reason and the others are "
            "ingested (all refused: the first one's 4xx). Posting the same `source` again "
            "replaces that document (`replaced: true`). `scope: global` is admin only."
        ),
        responses=error_responses(400, 401, 403, 413, 415, 503),
    )
    async def ingest(
        self, request: Request[Any, Any, Any], knowledge_base: KnowledgeBase, upload_dir: Path
    ) -> Response[IngestedDocument | IngestedList]:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            return await _upload(request, knowledge_base, upload_dir)
        if media_type == "application/json":
            documents, batch = _from_json(await request.body())
        else:
            raise HTTPException(
                status_code=415,
                detail="Content-Type must be application/json or multipart/form-data",
            )
        # A client gone stops the ingest; nothing of it is written (see KnowledgeBase).
        results = await unless_disconnected(request, knowledge_base.ingest(request.user, documents))
        if batch:
            return Response(IngestedList(data=[_ingested(r) for r in results]), status_code=201)
        return Response(_ingested(results[0]), status_code=201)

    @get(
        "/{document_id:str}",
        guards=[requires(Capability.SEARCH_DOCUMENTS)],
        summary="Read a document back (with its chunks: ?include=chunks)",
        description=(
            "The document's metadata; with `include=chunks` its chunks in order, each with "
            "`id`, `text`, `page` (PDF, 1-based), `heading_path` and its character span "
            "`start`/`end` in the document's text. A tenant reads its own documents and "
            "global ones; any other id is 404."
        ),
        responses=error_responses(400, 401, 404, 503),
    )
    async def read_document(
        self,
        request: Request[Any, Any, Any],
        document_id: str,
        knowledge_base: KnowledgeBase,
        include: str | None = None,
    ) -> DocumentDetailOut:
        if include not in (None, "", "chunks"):
            raise InvalidRequest(f"include must be `chunks`, not {include!r}", param="include")
        found = await knowledge_base.get(request.user, document_id, with_chunks=include == "chunks")
        return _detail(found)

    @get(
        "",
        guards=[requires(Capability.SEARCH_DOCUMENTS)],
        summary="List documents (paged with limit and after)",
        description=(
            "Documents the key's tenant sees (its own and global ones), by id. `source`: "
            "only those whose source starts with it; `metadata.KEY=VALUE` (repeatable): "
            "only those whose metadata KEY has that value (`true`/`false` for booleans)."
        ),
        responses=error_responses(400, 401, 503),
    )
    async def list_documents(
        self,
        request: Request[Any, Any, Any],
        knowledge_base: KnowledgeBase,
        limit: int = Parameter(default=20, ge=1, le=100),
        after: str | None = None,
        source: str | None = Parameter(
            default=None, description="a prefix the documents' source starts with"
        ),
    ) -> DocumentPage:
        metadata = {
            key.removeprefix(METADATA_PREFIX): value
            for key, value in request.query_params.items()
            if key.startswith(METADATA_PREFIX) and len(key) > len(METADATA_PREFIX)
        }
        where = DocumentListFilter(source or None, metadata) if source or metadata else None
        page = await knowledge_base.list(request.user, limit, after, where)
        return DocumentPage(data=[_summary(s) for s in page.data], has_more=page.has_more)

    @delete(
        "/{document_id:str}",
        status_code=200,
        guards=[requires(Capability.WRITE_DOCUMENTS)],
        summary="Delete a document and its chunks",
        responses=error_responses(401, 403, 404, 503),
    )
    async def delete_document(
        self, request: Request[Any, Any, Any], document_id: str, knowledge_base: KnowledgeBase
    ) -> Deleted:
        await knowledge_base.delete(request.user, document_id)
        return Deleted(id=document_id, object="document")


async def _upload(
    request: Request[Any, Any, Any], knowledge_base: KnowledgeBase, upload_dir: Path
) -> Response[IngestedDocument | IngestedList]:
    limit = request.route_handler.resolve_request_max_body_size() or 0
    async with spooled_form(request, upload_dir, limit) as form:
        if not form.files:
            raise InvalidRequest("the upload has no file part", param="file")
        scope, metadata, size = _upload_options(form)
        source = form.fields.get("source")
        one = len(form.files) == 1
        files = [
            UploadedFile(f.filename or "upload", f.path, source if source and one else None)
            for f in form.files
        ]
        # A client gone stops the ingest (nothing of the file in progress is written) and
        # the spooled files are removed as the block is left.
        outcomes = await unless_disconnected(
            request,
            knowledge_base.ingest_files(
                request.user, files, metadata=metadata, scope=scope, size=size
            ),
        )
    ingested = [_ingested(o) for o in outcomes if isinstance(o, Ingested)]
    refused = [_refused(o) for o in outcomes if isinstance(o, Refused)]
    if not ingested:
        first = next(o for o in outcomes if isinstance(o, Refused))
        raise first.error.__class__(refused[0][1].message, param=first.error.param)
    return Response(IngestedList(data=ingested, errors=[r for _, r in refused]), status_code=201)

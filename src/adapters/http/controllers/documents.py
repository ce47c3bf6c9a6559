"""``/v1/documents``: the knowledge base (developer tier writes; standard reads)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from adapters.http.auth import requires
from adapters.http.disconnect import unless_disconnected
from adapters.http.errors import missing_field
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import (
    Deleted,
    DocumentIn,
    DocumentOut,
    DocumentPage,
    DocumentsIn,
    IngestedDocument,
    IngestedList,
)
from application.knowledge_base import Ingested, KnowledgeBase, NewDocument
from domain.documents import DocumentSummary, Scope
from domain.errors import InvalidRequest
from domain.principal import Capability

UPLOAD_SUFFIXES = (".md", ".markdown", ".txt")
_decode_one = msgspec.json.Decoder(DocumentIn).decode
_decode_many = msgspec.json.Decoder(DocumentsIn).decode


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
    return [NewDocument(d.source, d.text, dict(d.metadata), Scope(d.scope)) for d in parsed], batch


async def _from_upload(request: Request[Any, Any, Any]) -> list[NewDocument]:
    form = await request.form()
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise InvalidRequest("the upload has no file part", param="file")
    scope = (
        Scope(form.get("scope") or "tenant")
        if form.get("scope") in (None, "tenant", "global")
        else None
    )
    if scope is None:
        raise InvalidRequest("scope must be `tenant` or `global`", param="scope")
    try:
        metadata = msgspec.json.decode(form.get("metadata") or "{}", type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidRequest("metadata must be a JSON object", param="metadata") from None
    source = form.get("source")
    documents = []
    for upload in files:
        name = upload.filename or "upload"
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            # The name becomes the document's `source`, shown in answers and logs.
            raise InvalidRequest(f"the file name {name!r} has control characters", param="file")
        if not name.lower().endswith(UPLOAD_SUFFIXES):
            raise HTTPException(
                status_code=415,
                detail=f"{name}: only {', '.join(UPLOAD_SUFFIXES)} files can be uploaded",
            )
        try:
            text = (await upload.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{name} is not UTF-8 text", param="file") from None
        documents.append(
            NewDocument(source if source and len(files) == 1 else name, text, metadata, scope)
        )
    return documents


def _ingested(result: Ingested) -> IngestedDocument:
    return IngestedDocument(id=result.id, source=result.source, chunk_count=result.chunk_count)


def _summary(s: DocumentSummary) -> DocumentOut:
    return DocumentOut(
        id=s.id,
        source=s.source,
        scope=s.scope.value,
        chunk_count=s.chunk_count,
        created_at=int(s.created_at),
        metadata=dict(s.metadata),
    )


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
            'JSON `{"text", "source", "metadata"?, "scope"?}` or a batch '
            '`{"documents": [...]}`, or a multipart upload of .md/.txt files (fields '
            "`file`, optional `source`, `metadata` as JSON, `scope`). Posting the same "
            "`source` again replaces that document. `scope: global` is admin only."
        ),
        responses=error_responses(400, 401, 403, 413, 415, 503),
    )
    async def ingest(
        self, request: Request[Any, Any, Any], knowledge_base: KnowledgeBase
    ) -> Response[IngestedDocument | IngestedList]:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            documents, batch = await _from_upload(request), True
        elif media_type == "application/json":
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
        "",
        guards=[requires(Capability.SEARCH_DOCUMENTS)],
        summary="List documents (paged with limit and after)",
        responses=error_responses(400, 401, 503),
    )
    async def list_documents(
        self,
        request: Request[Any, Any, Any],
        knowledge_base: KnowledgeBase,
        limit: int = Parameter(default=20, ge=1, le=100),
        after: str | None = None,
    ) -> DocumentPage:
        page = await knowledge_base.list(request.user, limit, after)
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

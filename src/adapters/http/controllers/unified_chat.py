"""``POST /v1/chat``: memory + RAG + inference in one call (the seed's unified chat)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.response import Stream

from adapters.http.auth import requires
from adapters.http.client_context import passage_reference
from adapters.http.content import json_body, strictly
from adapters.http.controllers.rag import hit_out
from adapters.http.disconnect import unless_disconnected
from adapters.http.errors import status_and_body
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted_generation
from adapters.http.sse import DONE_EVENT, SSE_HEADERS, event
from adapters.http.wire import (
    AssistantMessage,
    CitationOut,
    Context,
    Degraded,
    MemoryContext,
    RagPassageOut,
    UnifiedChatIn,
    UnifiedChatOut,
    UnifiedChoice,
    UnifiedContextEvent,
    UnifiedMetadataEvent,
    UnifiedMetadataOut,
    Usage,
)
from adapters.telemetry.metrics import RequestMetrics
from application.access import AdmissionControl, Generation, GenerationAsk
from application.unified_chat import UnifiedChat, UnifiedChatRequest, UnifiedMetadata
from domain.chat import Usage as DomainUsage
from domain.citations import Citation
from domain.context import ContextBundle
from domain.documents import DocumentHit
from domain.errors import GatewayError, InvalidRequest, UpstreamTimeout
from domain.principal import Capability
from domain.stages import TIMED_STAGES, Stage

_encode = msgspec.json.Encoder().encode


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def context_out(bundle: ContextBundle) -> Context:
    return Context(
        memories=[
            MemoryContext(
                text=m.text,
                score=round(m.score, 4),
                similarity=round(m.similarity, 4),
                timestamp=iso(m.timestamp),
            )
            for m in bundle.memories
        ],
        rag_documents=[passage_out(n, d) for n, d in enumerate(bundle.documents, 1)],
    )


def passage_out(number: int, hit: DocumentHit) -> RagPassageOut:
    plain, where = hit_out(hit), passage_reference(number, hit)
    return RagPassageOut(
        text=plain.text,
        score=plain.score,
        similarity=plain.similarity,
        metadata=plain.metadata,
        **msgspec.structs.asdict(where),
    )


def citation_out(citation: Citation) -> CitationOut:
    where = citation.passage.metadata
    return CitationOut(
        number=citation.number,
        document_id=where.get("document_id"),
        source=where.get("source"),
        chunk_id=where.get("chunk_id"),
        page=where.get("page"),
    )


def metadata_out(m: UnifiedMetadata) -> UnifiedMetadataOut:
    return UnifiedMetadataOut(
        memory_retrieval_ms=m.memory_retrieval_ms,
        rag_retrieval_ms=m.rag_retrieval_ms,
        generation_ms=m.generation_ms,
        total_latency_ms=m.total_latency_ms,
        memories_retrieved=m.memories_retrieved,
        rag_documents_retrieved=m.rag_documents_retrieved,
        memory_stored=m.memory_stored,
        memory_id=m.memory_id,
        degraded=[Degraded(stage=d.stage, reason=d.reason) for d in m.degraded],
        embedding_ms=m.embedding_ms,
        within_budget=m.within_budget,
        latency_budget_ms=m.latency_budget_ms,
        citations=[citation_out(c) for c in m.citations],
    )


def usage_out(usage: DomainUsage | None) -> Usage | None:
    if usage is None:
        return None
    return Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


SEED_MAX_TOKENS = 2048
_FIELDS = frozenset(UnifiedChatIn.__struct_fields__)


def refuse_unknown_fields(raw: bytes) -> None:
    """A field ``/v1/chat`` does not know (a typo, an OpenAI parameter it does not use)
    is an error, not silently dropped. ``/v1/chat/completions`` forwards them."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return  # the typed decoding names what is wrong
    if not isinstance(body, dict):
        return
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown)
        raise InvalidRequest(
            f"unknown field{'s' if len(unknown) > 1 else ''} {names}; /v1/chat accepts: "
            + ", ".join(sorted(_FIELDS)),
            param=unknown[0],
        )


def to_request(data: UnifiedChatIn, max_tokens: int) -> UnifiedChatRequest:
    return UnifiedChatRequest(
        messages=[(m.role, m.content) for m in data.messages],
        model=data.model,
        user_id=data.user_id,
        use_memory=data.use_memory,
        use_rag=data.use_rag,
        store_memory=data.store_memory,
        rag_k=data.rag_k,
        memory_limit=data.memory_limit,
        max_tokens=max_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        latency_budget_ms=data.latency_budget_ms,
        rag_filter=dict(data.rag_filter),
    )


def observe(request: Request[Any, Any, Any], metrics: RequestMetrics, m: UnifiedMetadata) -> None:
    """Stage timings feed the metrics and the request's log line."""
    timings = {
        Stage.EMBEDDING: m.embedding_ms,
        Stage.MEMORY_RETRIEVAL: m.memory_retrieval_ms,
        Stage.RAG_RETRIEVAL: m.rag_retrieval_ms,
        Stage.GENERATION: m.generation_ms,
        Stage.TOTAL_LATENCY: m.total_latency_ms,
    }
    for stage in TIMED_STAGES:
        metrics.record_stage(stage, timings[stage] / 1000)
    request.scope.setdefault("state", {})["log"] = {
        "stages_ms": timings,
        "degraded": [d.stage for d in m.degraded],
    }


class UnifiedChatController(Controller):
    path = "/v1/chat"
    tags = ["unified chat"]
    guards = [requires(Capability.CHAT), json_body]

    @post(
        "",
        status_code=200,
        summary="Chat with memory and RAG (the unified endpoint)",
        description=(
            "Retrieves the user's memories (with temporal decay) and relevant documents in "
            "parallel within the latency budget, generates the answer, and queues the turn "
            "as memory. A retrieval stage that fails or misses its deadline is skipped and "
            "named in `metadata.degraded`. An unknown field is refused (400). Without "
            "`user_id` memory is off and `metadata.degraded` says so. With `stream: true`: "
            "server-sent events `context` (`unified.chat.context`, sent as soon as "
            "retrieval is done, before generation starts), `chunk` (each "
            "`chat.completion.chunk`), `metadata` (`unified.chat.metadata`), then "
            "`data: [DONE]`; a failure once streaming is an `error` event."
        ),
        responses=error_responses(400, 401, 403, 404, 413, 415, 502, 503, 504),
    )
    async def chat(
        self,
        request: Request[Any, Any, Any],
        data: UnifiedChatIn,
        unified_chat: UnifiedChat,
        request_metrics: RequestMetrics,
        admission: AdmissionControl,
    ) -> Response[UnifiedChatOut]:
        raw = await request.body()
        refuse_unknown_fields(raw)
        data = strictly(raw, UnifiedChatIn)
        ask = GenerationAsk(
            contents=[m.content for m in data.messages],
            model=data.model,
            max_tokens=data.max_tokens,
            default_max_tokens=SEED_MAX_TOKENS,
        )
        async with admitted_generation(request, admission, ask) as grant:
            unified = to_request(data, grant.max_tokens or SEED_MAX_TOKENS)
            if data.stream:
                return await self._stream(  # type: ignore[return-value]
                    request, unified, unified_chat, request_metrics, grant
                )
            answer = await unless_disconnected(request, unified_chat.answer(request.user, unified))
            grant.record(answer.usage.total_tokens if answer.usage else None)
        observe(request, request_metrics, answer.metadata)
        return Response(
            UnifiedChatOut(
                id=answer.id,
                created=answer.created,
                model=answer.model,
                choices=[
                    UnifiedChoice(
                        index=0,
                        message=AssistantMessage(role="assistant", content=answer.content),
                        finish_reason=answer.finish_reason,
                    )
                ],
                usage=usage_out(answer.usage),
                context=context_out(answer.context),
                metadata=metadata_out(answer.metadata),
            )
        )

    async def _stream(
        self,
        request: Request[Any, Any, Any],
        unified_request: UnifiedChatRequest,
        unified_chat: UnifiedChat,
        metrics: RequestMetrics,
        grant: Generation,
    ) -> Stream:
        stream = await unified_chat.stream(request.user, unified_request)
        # Settled with the real usage at the end; a client gone before keeps the
        # reservation spent (the worst case: what was generated is unknown).
        settle = grant.hand_over()

        async def events() -> AsyncIterator[bytes]:
            # The context goes out as soon as retrieval is done, before generation
            # starts; a failure after it is an ``error`` event, as OpenAI does mid-stream.
            try:
                yield event(
                    _encode(UnifiedContextEvent(context=context_out(stream.context))), "context"
                )
                relayed = False
                try:
                    async for payload in stream.chunks():
                        relayed = True
                        yield event(payload, "chunk")
                except GatewayError as exc:
                    if not relayed and not isinstance(exc, UpstreamTimeout):
                        # Refused before anything was generated: nothing spent, as when
                        # not streaming.
                        await settle(0)
                    _, body = status_and_body(exc)
                    yield event(_encode(body), "error")
                    return
                finally:
                    await stream.aclose()
                metadata, usage = await stream.finish()
                observe(request, metrics, metadata)
                await settle(usage.total_tokens if usage else None)
                yield event(
                    _encode(
                        UnifiedMetadataEvent(
                            metadata=metadata_out(metadata), usage=usage_out(usage)
                        )
                    ),
                    "metadata",
                )
                yield DONE_EVENT
            finally:
                await settle(None)  # an error or a client gone: settled once, at worst

        return Stream(events(), media_type="text/event-stream", headers=SSE_HEADERS)

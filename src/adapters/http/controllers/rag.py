"""``POST /v1/rag/search``: retrieval alone — what the chat would see."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from adapters.http.auth import requires
from adapters.http.content import json_body
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import DocumentHitOut, RagSearchIn, RagSearchOut
from application.knowledge_base import KnowledgeBase
from domain.documents import DocumentHit
from domain.principal import Capability


class RagController(Controller):
    path = "/v1/rag"
    tags = ["knowledge base"]
    guards = [requires(Capability.SEARCH_DOCUMENTS), json_body, admitted]

    @post(
        "/search",
        status_code=200,
        summary="Search the knowledge base (hybrid dense + keyword)",
        description=(
            "Hits in order of `score` (the fused reciprocal-rank score in hybrid mode); "
            "`similarity` is each chunk's cosine similarity to the query. `filter` matches "
            "user metadata exactly and the fields every hit shows: `source`, "
            "`document_id`, and `created_at` as a range of dates "
            '(`{"created_at": {"gte": "2026-01-01", "lt": "2026-02-01"}}`).'
        ),
        responses=error_responses(400, 401, 415, 503),
    )
    async def search(
        self, request: Request[Any, Any, Any], data: RagSearchIn, knowledge_base: KnowledgeBase
    ) -> RagSearchOut:
        hits = await knowledge_base.search(request.user, data.query, data.k, dict(data.filter))
        return RagSearchOut(data=[hit_out(h) for h in hits])


def hit_out(hit: DocumentHit) -> DocumentHitOut:
    return DocumentHitOut(
        text=hit.text,
        score=round(hit.ordered_by, 6),
        similarity=round(hit.score, 4),
        metadata=dict(hit.metadata),
    )

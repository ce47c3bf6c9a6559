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
from domain.principal import Capability


class RagController(Controller):
    path = "/v1/rag"
    tags = ["knowledge base"]
    guards = [requires(Capability.SEARCH_DOCUMENTS), json_body, admitted]

    @post(
        "/search",
        status_code=200,
        summary="Search the knowledge base (hybrid dense + keyword)",
        responses=error_responses(400, 401, 415, 503),
    )
    async def search(
        self, request: Request[Any, Any, Any], data: RagSearchIn, knowledge_base: KnowledgeBase
    ) -> RagSearchOut:
        hits = await knowledge_base.search(request.user, data.query, data.k, dict(data.filter))
        return RagSearchOut(
            data=[
                DocumentHitOut(text=h.text, score=h.score, metadata=dict(h.metadata)) for h in hits
            ]
        )

"""``POST /v1/embeddings``: OpenAI-compatible, from the gateway's own embedder."""

from __future__ import annotations

import base64
from array import array
from typing import Any

from litestar import Controller, Request, post

from adapters.http.auth import requires
from adapters.http.content import json_body
from adapters.http.disconnect import unless_disconnected
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import remember_admission
from adapters.http.wire import EmbeddingOut, EmbeddingsIn, EmbeddingsOut, EmbeddingUsage
from application.access import AdmissionControl, estimate_tokens
from application.embeddings import CreateEmbeddings
from domain.principal import Capability


def _base64(vector: list[float]) -> str:
    # OpenAI's base64 encoding: little-endian float32.
    return base64.b64encode(array("f", vector).tobytes()).decode()


class EmbeddingsController(Controller):
    path = "/v1/embeddings"
    tags = ["inference"]
    guards = [requires(Capability.CHAT), json_body]

    @post(
        "",
        status_code=200,
        summary="Create embeddings (the model the gateway retrieves with)",
        description=(
            "`model`: the embedder's name or an alias (GATEWAY_EMBEDDINGS_ALIASES; "
            "GET /v1/models lists them); another is a 404 naming the available ones. "
            "`dimensions` other than the model's own is a 400. `usage` counts the "
            "embedder's own tokens."
        ),
        responses=error_responses(400, 401, 404, 415, 503),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: EmbeddingsIn,
        create_embeddings: CreateEmbeddings,
        admission: AdmissionControl,
    ) -> EmbeddingsOut:
        create_embeddings.resolve(data.model)
        create_embeddings.check_dimensions(data.dimensions)
        inputs = [data.input] if isinstance(data.input, str) else data.input
        tokens = estimate_tokens(inputs, max_tokens=None, default_max=0)
        remember_admission(request, await admission.admit(request.user, tokens))
        # A client gone stops its work: its turns on the shared embedder go to others.
        result = await unless_disconnected(
            request, create_embeddings(inputs, tenant=request.user.tenant)
        )
        encode = _base64 if data.encoding_format == "base64" else list
        return EmbeddingsOut(
            data=[EmbeddingOut(index=i, embedding=encode(v)) for i, v in enumerate(result.vectors)],
            model=result.model,
            usage=EmbeddingUsage(
                prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens
            ),
        )

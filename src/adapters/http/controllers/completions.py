"""``POST /v1/completions``: OpenAI's legacy text completions, passed through to the
routed upstream when it serves them (llama.cpp's server, MAX Serve, vLLM)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post

from adapters.http.auth import requires
from adapters.http.content import json_body, strictly
from adapters.http.generation import Streamed, generate
from adapters.http.openapi import error_responses
from adapters.http.protocol_wire import CompletionRequest, TextCompletion
from adapters.http.services import Services
from adapters.http.sse import relay
from application.access import Generation, GenerationAsk
from domain.principal import Capability

_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def prompt_texts(prompt: str | list[str | int | list[int]]) -> list[str]:
    """The prompt as texts, for admission (token ids count as a few characters each)."""
    if isinstance(prompt, str):
        return [prompt]
    texts: list[str] = []
    for item in prompt:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, list):
            texts.append("0000" * len(item))
        else:
            texts.append("0000")
    return texts


class CompletionsController(Controller):
    path = "/v1/completions"
    tags = ["inference"]
    guards = [requires(Capability.CHAT), json_body]

    @post(
        "",
        status_code=200,
        summary="Create a text completion (OpenAI's legacy completions)",
        description=(
            "Passed through to the model's upstream when it serves `/v1/completions` "
            "(llama.cpp's server, the embedded model, MAX Serve, vLLM); a 400 naming "
            "`model` when it does not. The same admission as chat completions: "
            "`max_tokens` within the key's cap (the cap is sent when none is given), "
            "`n` within the tier's, the key's allowed models, rate limits and quota. "
            "With `stream: true` the answer is `text/event-stream` of `text_completion` "
            "chunks ending with `data: [DONE]`."
        ),
        responses=error_responses(400, 401, 403, 404, 413, 415, 502, 503, 504),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: CompletionRequest,
        services: Services,
    ) -> Response[TextCompletion]:
        raw = await request.body()
        data = strictly(raw, CompletionRequest)
        ask = GenerationAsk(
            contents=prompt_texts(data.prompt),
            model=data.model,
            max_tokens=data.max_tokens,
            n=data.n,
        )

        def body_for(grant: Generation) -> dict[str, Any]:
            body = _decode_object(raw)
            validated = msgspec.to_builtins(data)
            body.update({k: v for k, v in validated.items() if k in body})
            body.pop("max_tokens", None)
            if grant.max_tokens is not None:
                body["max_tokens"] = grant.max_tokens  # the legacy API has one name
            return body

        outcome = await generate(request, services, ask, body_for, wire="text")
        if isinstance(outcome, Streamed):
            events = relay(outcome.first, outcome.chunks, outcome.close)
            return outcome.response(events)  # type: ignore[return-value]
        return Response(content=outcome.completion.body, media_type="application/json")  # type: ignore[arg-type]

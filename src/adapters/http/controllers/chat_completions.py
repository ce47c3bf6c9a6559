"""``POST /v1/chat/completions``: OpenAI-compatible, streaming or not."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post

from adapters.http.auth import requires
from adapters.http.content import json_body, strictly
from adapters.http.generation import Streamed, generate
from adapters.http.openapi import error_responses
from adapters.http.services import Services
from adapters.http.sse import relay
from adapters.http.wire import ChatCompletion, ChatCompletionRequest
from application.access import Generation, GenerationAsk
from domain.principal import Capability

_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class ChatCompletionsController(Controller):
    path = "/v1/chat/completions"
    tags = ["inference"]
    guards = [requires(Capability.CHAT), json_body]

    @post(
        "",
        status_code=200,
        summary="Create a chat completion (OpenAI-compatible)",
        description=(
            "Routed to the model's upstream. Every OpenAI parameter is forwarded untouched, "
            "except the completion bound: `max_tokens`/`max_completion_tokens` must be within "
            "the key's cap and one of them is sent (the key's cap when neither is given); "
            "`n` is bounded by the key's tier. "
            "With `stream: true` the answer is `text/event-stream` of `chat.completion.chunk` "
            "events ending with `data: [DONE]`."
        ),
        responses=error_responses(400, 401, 403, 404, 413, 415, 502, 503, 504),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: ChatCompletionRequest,
        services: Services,
    ) -> Response[ChatCompletion]:
        raw = await request.body()
        data = strictly(raw, ChatCompletionRequest)
        ask = GenerationAsk(
            contents=[str(m.content or "") for m in data.messages],
            model=data.model,
            max_tokens=data.max_tokens,
            max_completion_tokens=data.max_completion_tokens,
            n=data.n,
        )

        def body_for(grant: Generation) -> dict[str, Any]:
            body = _decode_object(raw)
            # What was validated is what is forwarded: a lax decode ("stream": 1,
            # "max_tokens": "8") must not reach the upstream as sent. Messages keep their
            # unknown fields. The completion bound goes as one field, within the key's cap.
            validated = msgspec.to_builtins(data)
            body.update({k: v for k, v in validated.items() if k in body and k != "messages"})
            body.pop("max_tokens", None)
            body.pop("max_completion_tokens", None)
            if grant.max_tokens is not None:
                body[grant.token_field] = grant.max_tokens
            return body

        outcome = await generate(request, services, ask, body_for)
        if isinstance(outcome, Streamed):
            events = relay(outcome.first, outcome.chunks, outcome.close)
            return outcome.response(events)  # type: ignore[return-value]
        # The upstream's bytes, relayed as they are (the annotation documents their shape).
        return Response(
            content=outcome.completion.body,  # type: ignore[arg-type]
            media_type="application/json",
            headers=outcome.headers,
        )

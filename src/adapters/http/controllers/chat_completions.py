"""``POST /v1/chat/completions``: OpenAI-compatible, streaming or not."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.response import Stream

from adapters.http.auth import requires
from adapters.http.client_context import augmented
from adapters.http.content import json_body, strictly
from adapters.http.disconnect import unless_disconnected
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted_generation
from adapters.http.services import Services
from adapters.http.sse import SSE_HEADERS, first_chunk, relay
from adapters.http.wire import ChatCompletion, ChatCompletionRequest
from application.access import GenerationAsk
from domain.chat import ChatRequest
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
        chat_completions = services.chat_completions
        raw = await request.body()
        data = strictly(raw, ChatCompletionRequest)
        ask = GenerationAsk(
            contents=[str(m.content or "") for m in data.messages],
            model=data.model,
            max_tokens=data.max_tokens,
            max_completion_tokens=data.max_completion_tokens,
            n=data.n,
        )
        context = augmented(request, services)  # memory and RAG, when asked for
        async with admitted_generation(request, services.admission, ask) as grant:
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
            if context is not None:
                body = await context.prepare(body)
            chat = ChatRequest(body)
            if chat.stream:
                stream = await chat_completions.stream(chat)
                chunks = aiter(stream)
                # A stream failing before its first chunk is settled as the block ends.
                first = await first_chunk(chunks, stream.aclose)
                settle = grant.hand_over()

                async def close() -> None:
                    await stream.aclose()
                    await settle(stream.usage.total_tokens if stream.usage else None)
                    if context is not None:
                        await context.remember(stream.content, stream.finish_reason)

                return Stream(
                    relay(first, chunks, close),
                    media_type="text/event-stream",
                    headers={**SSE_HEADERS, **context.headers()} if context else SSE_HEADERS,
                )  # type: ignore[return-value]
            completion = await unless_disconnected(request, chat_completions.complete(chat))
            grant.record(completion.usage.total_tokens if completion.usage else None)
        headers = None
        if context is not None:
            await context.remember(completion.content, completion.finish_reason)
            headers = context.headers()
        # The upstream's bytes, relayed as they are (the annotation documents their shape).
        return Response(content=completion.body, media_type="application/json", headers=headers)  # type: ignore[arg-type]

"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API,
translated onto the routed chat-completions upstream (``application.protocols.anthropic``).
The key comes as ``x-api-key`` or ``Authorization: Bearer``; errors are Anthropic's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.openapi import ResponseSpec

from adapters.http.auth import requires
from adapters.http.content import json_body, strictly
from adapters.http.errors import status_and_body
from adapters.http.generation import Streamed, bounded, generate
from adapters.http.protocol_errors import anthropic_error
from adapters.http.protocol_wire import (
    AnthropicError,
    AnthropicMessageOut,
    CountTokensRequest,
    MessagesRequest,
    TokenCount,
)
from adapters.http.ratelimit import admitted
from adapters.http.services import Services
from adapters.http.sse import event
from application.access import GenerationAsk, prompt_estimate
from application.protocols import anthropic
from domain.errors import GatewayError, ModelNotAllowed
from domain.principal import Capability, Principal

_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode

_DESCRIPTIONS = {
    400: "Invalid request: the field is named in the message",
    401: "Missing or invalid API key",
    403: "The key's tier does not allow this, or the model is not one of the key's",
    404: "Unknown model",
    413: "Request body too large",
    415: "Content-Type is not application/json",
    429: "Over the key's rate limit or token quota",
    502: "The inference upstream is unreachable or answered garbage",
    503: "Overloaded: the upstream's queue is full",
    504: "The inference upstream did not answer in time",
}


def anthropic_errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        s: ResponseSpec(
            data_container=AnthropicError,
            description=_DESCRIPTIONS[s],
            generate_examples=False,
        )
        for s in sorted({400, 429, *statuses})
    }


def sse(events: Iterable[anthropic.Event]) -> bytes:
    return b"".join(event(_encode(payload), name) for name, payload in events)


async def message_events(
    translator: anthropic.MessageStream,
    first: bytes,
    chunks: AsyncIterator[bytes],
    close: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """Anthropic's event stream for the upstream's chunks; a failure once the answer
    started is Anthropic's ``error`` event."""
    try:
        yield sse(translator.start())
        yield sse(translator.feed(_decode_object(first)))
        async for payload in chunks:
            events = translator.feed(_decode_object(payload))
            if events:
                yield sse(events)
        yield sse(translator.finish())
    except (GatewayError, msgspec.DecodeError) as exc:
        status, body = status_and_body(exc if isinstance(exc, GatewayError) else ValueError())
        yield event(_encode(anthropic_error(status, body)), "error")
    finally:
        await close()


class MessagesController(Controller):
    path = "/v1/messages"
    tags = ["anthropic"]
    guards = [requires(Capability.CHAT), json_body]

    @post(
        "",
        status_code=200,
        summary="Create a message (Anthropic's Messages API)",
        description=(
            "Anthropic's Messages API over the model's chat-completions upstream: "
            "`system` (a string or text blocks), text content blocks (an image or a "
            "document block is a 400), `system` messages between turns, `max_tokens` "
            "(lowered to the key's cap), "
            "`stop_sequences`, `temperature`, `top_p`, `tools` with `tool_use` / "
            "`tool_result` round trips and `tool_choice`. `top_k`, `thinking`, "
            "`service_tier`, `context_management`, `output_config` and `metadata` are "
            "accepted; only `metadata.user_id` is "
            "forwarded (as `user`). The key goes in `x-api-key` or `Authorization: "
            "Bearer`. With `stream: true` the answer is Anthropic's event stream "
            "(`message_start`, `content_block_start`, `content_block_delta`, "
            "`content_block_stop`, `message_delta` with the stop reason and usage, "
            "`message_stop`). Errors have Anthropic's shape."
        ),
        responses=anthropic_errors(400, 401, 403, 404, 413, 415, 502, 503, 504),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: MessagesRequest,
        services: Services,
    ) -> Response[AnthropicMessageOut]:
        raw = await request.body()
        data = strictly(raw, MessagesRequest)
        asked = msgspec.to_builtins(data)
        body = anthropic.chat_request(asked)
        # ``max_tokens`` is required and clients send their model's most (Claude Code
        # 32,000): a ceiling the key's cap lowers, not a refusal.
        ask = GenerationAsk(
            contents=anthropic.prompt_texts(asked),
            model=data.model,
            default_max_tokens=data.max_tokens,
        )
        outcome = await generate(request, services, ask, bounded(body))
        if isinstance(outcome, Streamed):
            translator = anthropic.MessageStream(outcome.stream.model or data.model)
            events = message_events(translator, outcome.first, outcome.chunks, outcome.close)
            return outcome.response(events)  # type: ignore[return-value]
        completion = outcome.completion
        answer = anthropic.message(_decode_object(completion.body), completion.model)
        return Response(content=answer, headers=outcome.headers)  # type: ignore[arg-type]

    @post(
        "/count_tokens",
        status_code=200,
        summary="Count a message's input tokens (Anthropic's Messages API)",
        description=(
            "The input tokens of a Messages request (its system prompt, messages and "
            "tools), estimated as the gateway's admission estimates them (4 characters "
            "a token): the upstream's tokenizer is not consulted."
        ),
        responses=anthropic_errors(400, 401, 403, 404, 413, 415),
        guards=[admitted],
    )
    async def count_tokens(
        self,
        request: Request[Any, Any, Any],
        data: CountTokensRequest,
        services: Services,
    ) -> TokenCount:
        data = strictly(await request.body(), CountTokensRequest)
        asked = msgspec.to_builtins(data)
        principal: Principal = request.user
        if not principal.may_use(data.model):
            raise ModelNotAllowed(f"this key may not use the model `{data.model}`", param="model")
        await services.chat_completions.resolve(data.model)
        texts = anthropic.prompt_texts(asked)
        return TokenCount(input_tokens=max(1, prompt_estimate(texts)))

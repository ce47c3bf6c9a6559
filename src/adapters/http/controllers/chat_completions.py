"""``POST /v1/chat/completions``: OpenAI-compatible, streaming or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.response import Stream

from adapters.http.auth import requires
from adapters.http.content import json_body
from adapters.http.errors import status_and_body
from adapters.http.openapi import error_responses
from adapters.http.wire import ChatCompletion, ChatCompletionRequest
from application.chat_completions import ChatCompletions
from domain.chat import ChatRequest
from domain.errors import GatewayError, UpstreamUnavailable
from domain.principal import Capability
from ports.chat_model import ChatStream

# No buffering anywhere between the upstream and the client, proxies included.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE_EVENT = b"data: [DONE]\n\n"
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


async def sse_relay(stream: ChatStream) -> tuple[bytes | None, AsyncIterator[bytes]]:
    """Wait for the first chunk (so an upstream failing at once is still an HTTP
    error), then relay each chunk as one SSE event the moment it arrives."""
    chunks = aiter(stream)
    try:
        first: bytes | None = await anext(chunks)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await stream.aclose()
        raise
    if first is None:
        await stream.aclose()
        raise UpstreamUnavailable("the inference upstream ended the stream without a chunk")

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: " + first + b"\n\n"
            async for payload in chunks:
                yield b"data: " + payload + b"\n\n"
        except GatewayError as exc:
            # Headers are sent: the failure becomes an error event, as OpenAI does.
            _, body = status_and_body(exc)
            yield b"data: " + _encode(body) + b"\n\n"
            return
        finally:
            await stream.aclose()
        yield DONE_EVENT

    return first, events()


class ChatCompletionsController(Controller):
    path = "/v1/chat/completions"
    tags = ["inference"]
    guards = [requires(Capability.CHAT), json_body]

    @post(
        "",
        status_code=200,
        summary="Create a chat completion (OpenAI-compatible)",
        description=(
            "Routed to the model's upstream. Every OpenAI parameter is forwarded untouched. "
            "With `stream: true` the answer is `text/event-stream` of `chat.completion.chunk` "
            "events ending with `data: [DONE]`."
        ),
        responses=error_responses(400, 401, 403, 404, 413, 415, 502, 503, 504),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: ChatCompletionRequest,
        chat_completions: ChatCompletions,
    ) -> Response[ChatCompletion]:
        body = _decode_object(await request.body())
        chat = ChatRequest(body)
        if chat.stream:
            stream = await chat_completions.stream(chat)
            _, events = await sse_relay(stream)
            return Stream(events, media_type="text/event-stream", headers=SSE_HEADERS)  # type: ignore[return-value]
        completion = await chat_completions.complete(chat)
        # The upstream's bytes, relayed as they are (the annotation documents their shape).
        return Response(content=completion.body, media_type="application/json")  # type: ignore[arg-type]

"""One generation, whatever protocol asked for it: admitted (rate limits, quota, the
key's cap and models), given the client's context when asked for (memory, RAG), routed
to the model's upstream, then streamed or answered. The protocol controllers translate
their request into a chat (or legacy text) completion body, call ``generate``, and
translate what comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request
from litestar.response import Stream

from adapters.http.client_context import Augmented, augmented
from adapters.http.disconnect import unless_disconnected
from adapters.http.ratelimit import admitted_generation
from adapters.http.services import Services
from adapters.http.sse import SSE_HEADERS, first_chunk
from application.access import Generation, GenerationAsk
from domain.chat import ChatRequest, Completion
from ports.chat_model import ChatStream

Wire = Literal["chat", "text", "responses"]


@dataclass(slots=True)
class Streamed:
    """An accepted stream: its ``first`` payload is in; ``close`` ends the upstream
    request, settles the key's tokens and stores the turn (memory)."""

    stream: ChatStream
    first: bytes
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]
    headers: dict[str, str]

    def response(self, events: AsyncIterator[bytes]) -> Stream:
        """The client's event stream, ``events`` (made of this stream's payloads)."""
        return Stream(events, media_type="text/event-stream", headers=self.headers)


@dataclass(slots=True)
class Answered:
    """A whole answer, its tokens recorded and its turn stored; ``headers`` tell the
    client's context (None when none was asked for)."""

    completion: Completion
    headers: dict[str, str] | None


def bounded(body: dict[str, Any]) -> Callable[[Generation], dict[str, Any]]:
    """A translated body, sent with the grant's completion bound as ``max_tokens``."""

    def body_for(grant: Generation) -> dict[str, Any]:
        if grant.max_tokens is not None:
            body["max_tokens"] = grant.max_tokens
        return body

    return body_for


async def generate(
    request: Request[Any, Any, Any],
    services: Services,
    ask: GenerationAsk,
    body_for: Callable[[Generation], dict[str, Any]],
    *,
    wire: Wire = "chat",
) -> Streamed | Answered:
    """``body_for(grant)`` is the upstream body once admitted (the grant bounds its
    completion tokens), a chat completion request unless ``wire`` says: ``text``, a
    ``/v1/completions`` body; ``responses``, a ``/v1/responses`` body for an upstream
    serving it. Only chat gets the client's context (a prompt is not a conversation;
    a forwarded response is the upstream's)."""
    chat_completions = services.chat_completions
    context: Augmented | None = augmented(request, services) if wire == "chat" else None
    async with admitted_generation(request, services.admission, ask) as grant:
        body = body_for(grant)
        if context is not None:
            body = await context.prepare(body)
        chat = ChatRequest(body)
        if chat.stream:
            opened = {"chat": chat_completions.stream, "text": chat_completions.stream_text,
                      "responses": chat_completions.stream_response}[wire]  # fmt: skip
            stream = await opened(chat)
            chunks = aiter(stream)
            # A stream failing before its first chunk is settled as the block ends.
            first = await first_chunk(chunks, stream.aclose)
            settle = grant.hand_over()

            async def close() -> None:
                await stream.aclose()
                await settle(stream.usage.total_tokens if stream.usage else None)
                if context is not None:
                    await context.remember(stream.content, stream.finish_reason)

            headers = {**SSE_HEADERS, **context.headers()} if context else SSE_HEADERS
            return Streamed(stream, first, chunks, close, headers)
        answered = {"chat": chat_completions.complete, "text": chat_completions.complete_text,
                    "responses": chat_completions.respond}[wire]  # fmt: skip
        completion = await unless_disconnected(request, answered(chat))
        grant.record(completion.usage.total_tokens if completion.usage else None)
    if context is None:
        return Answered(completion, None)
    await context.remember(completion.content, completion.finish_reason)
    return Answered(completion, context.headers())

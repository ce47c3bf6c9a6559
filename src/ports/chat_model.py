"""The inference port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from domain.chat import Completion, ModelCard, Usage
from domain.health import ServiceHealth


class ChatStream(Protocol):
    """Chunks of a streamed completion as they arrive: each item is one
    ``chat.completion.chunk`` JSON payload exactly as the upstream sent it (no SSE
    framing, no ``[DONE]``). ``aclose()`` releases the upstream request at once."""

    model: str
    usage: Usage | None  # known once the usage chunk has passed

    @property
    def usage_only(self) -> bool:
        """True while the chunk just yielded carries the usage and no choice (the last
        chunk of a stream asked for with ``include_usage``)."""
        ...

    @property
    def content(self) -> str:
        """The first choice's text streamed so far."""
        ...

    @property
    def finish_reason(self) -> str | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class ChatModel(Protocol):
    """An OpenAI-compatible chat model server (MAX Serve, vLLM, llama.cpp, Ollama...).

    ``body`` is an OpenAI chat completion request already routed to one of this
    upstream's models. Failures raise the ``Upstream*`` errors of ``domain.errors``:
    unreachable or garbage → ``UpstreamUnavailable``; too busy → ``UpstreamOverloaded``;
    no answer in time → ``UpstreamTimeout``; the request refused → ``UpstreamRejected``.
    ``stream`` returns once the upstream has accepted the request, so these errors come
    before any chunk does."""

    name: str

    @property
    def in_flight(self) -> int:
        """Requests outstanding on this upstream now (for least-outstanding balancing)."""
        ...

    @property
    def accepting(self) -> bool:
        """False while the upstream is known to be failing (its circuit is open)."""
        ...

    async def complete(self, body: Mapping[str, Any]) -> Completion: ...

    async def stream(self, body: Mapping[str, Any]) -> ChatStream: ...

    async def list_models(self) -> Sequence[ModelCard]: ...

    async def check(self) -> ServiceHealth: ...


@runtime_checkable
class TextCompletionModel(Protocol):
    """An upstream that also serves OpenAI's legacy ``/v1/completions`` (llama.cpp's
    server, MAX Serve, vLLM). ``body`` is a completion request routed to one of its
    models; the answer and the stream chunks are the upstream's, relayed as they are.
    An upstream answering that it has no such route raises ``TextCompletionsUnsupported``."""

    async def complete_text(self, body: Mapping[str, Any]) -> Completion: ...

    async def stream_text(self, body: Mapping[str, Any]) -> ChatStream: ...


@runtime_checkable
class ResponsesModel(Protocol):
    """An upstream serving OpenAI's ``/v1/responses`` itself; ``name`` is the name of
    its chat adapter. ``body`` is a Responses request routed to one of its models; the
    answer and the stream's events are the upstream's, relayed as they are."""

    name: str

    async def respond(self, body: Mapping[str, Any]) -> Completion: ...

    async def stream_response(self, body: Mapping[str, Any]) -> ChatStream: ...

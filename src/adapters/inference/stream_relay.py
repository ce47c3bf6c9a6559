"""A streamed completion relayed from an OpenAI-compatible server: each server-sent
event's payload passed on as it arrives, read only for what the gateway keeps (the
text, the finish reason, the usage)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

from adapters.inference.openai_wire import MALFORMED, decode_chunk
from adapters.inference.sse import sse_data
from adapters.inference.transport_errors import TranslatedTransport
from domain.chat import Usage
from domain.errors import UpstreamUnavailable
from ports.chat_model import ChatStream


class SSERelay:
    """An upstream's server-sent events relayed as they arrive (``__aiter__`` is each
    format's): what the first choice said so far in ``content``, the finish reason and
    usage once known. Closing it closes the upstream response (and so cancels the
    generation), then calls ``release``."""

    def __init__(
        self,
        response: httpx.Response,
        model: str,
        translated: TranslatedTransport,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.model = model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.usage_only = False
        self._parts: list[str] = []
        self._response = response
        self._translated = translated
        self._release = release
        self._closed = False

    @property
    def content(self) -> str:
        return "".join(self._parts)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._release is not None:
                self._release()
            await self._response.aclose()


class SSEChatStream(SSERelay):
    """``chat.completion.chunk`` events (and legacy ``text_completion`` ones)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        upstream = self._translated.upstream
        try:
            with self._translated:
                # Bytes as they came unless the upstream compressed them: one layer
                # of generators (decoder, chunker) less per chunk.
                response = self._response
                compressed = "content-encoding" in response.headers
                chunks = response.aiter_bytes() if compressed else response.aiter_raw()
                async for payload in sse_data(chunks):
                    try:
                        head = decode_chunk(payload)
                    except MALFORMED as exc:
                        raise UpstreamUnavailable(
                            f"inference upstream {upstream} sent a malformed stream chunk"
                        ) from exc
                    if head.usage is not None:
                        self.usage = head.usage.domain()
                    self.usage_only = not head.choices and head.usage is not None
                    for choice in head.choices:
                        if choice.index == 0:
                            if choice.delta is not None and choice.delta.content:
                                self._parts.append(choice.delta.content)
                            self.finish_reason = choice.finish_reason or self.finish_reason
                    yield payload
                if self.finish_reason is None:
                    # llama_cpp.server ends an interrupted answer with a plain [DONE]:
                    # relayed as finished, the client would take a cut answer for whole.
                    raise UpstreamUnavailable(
                        f"inference upstream {upstream} ended the answer before it was "
                        "finished (no finish_reason)"
                    )
        finally:
            await self.aclose()


class StreamAround:
    """A ``ChatStream`` around another: its text and finish reason are the inner
    stream's, closing it closes the inner one. Subclasses change what they relay."""

    def __init__(self, inner: ChatStream) -> None:
        self.model = inner.model
        self._inner = inner

    @property
    def content(self) -> str:
        return self._inner.content

    @property
    def finish_reason(self) -> str | None:
        return self._inner.finish_reason

    @property
    def usage_only(self) -> bool:
        return self._inner.usage_only

    async def aclose(self) -> None:
        await self._inner.aclose()

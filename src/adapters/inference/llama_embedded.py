"""``EmbeddedLlamaChatModel``: the embedded llama.cpp model behind its supervised
server, made to behave as the OpenAI API promises.

``llama_cpp.server`` silently ignores some OpenAI parameters (``n``, ``tools``,
``max_completion_tokens``) and never sends the usage chunk that
``stream_options.include_usage`` asks for. This adapter refuses what the model cannot
do with a 400 naming the parameter, translates what it can, and adds the usage chunk,
counting prompt tokens exactly as llama.cpp does (its vocabulary and chat template,
loaded without the weights).

A non-streamed completion is streamed from the server and assembled here: llama.cpp
stops a streamed generation when its client goes away, not a non-streamed one, so a
client that disconnects or times out frees the model for the next request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from adapters.inference.openai_wire import (
    ChunkHead,
    TextChunkHead,
    decode_chunk,
    decode_text_chunk,
    encode,
    usage_json,
)
from adapters.inference.plain_messages import plain_messages
from adapters.inference.resilient_chat_model import UpstreamChatModel
from adapters.inference.stream_relay import StreamAround
from adapters.inference.upstream_reason import client_safe_reason
from domain.chat import Completion, ModelCard, Usage
from domain.errors import InvalidRequest, UnsupportedParameter, UpstreamTimeout
from domain.health import ServiceHealth, Status
from ports.chat_model import ChatStream

_TOOL_PARAMS = ("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls")
_RESPONSE_FORMATS = ("text", "json_object")


class Supervised(Protocol):
    """The supervisor's view of the server process (``LlamaCppServerProcess``)."""

    restarts: int

    @property
    def running(self) -> bool: ...

    def describe(self) -> str: ...


# Legacy completion asks that a streamed answer would not carry whole.
_WHOLE_ANSWER_ONLY = ("logprobs", "echo", "best_of", "suffix")


class LlamaPromptCounter:
    """Counts a chat's prompt tokens with the GGUF's vocabulary and chat template."""

    def __init__(self, model_path: Path) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama = Llama(str(model_path), vocab_only=True, verbose=False)
        vocab = self._llama._model
        self._format = Jinja2ChatFormatter(
            template=self._llama.metadata["tokenizer.chat_template"],
            eos_token=vocab.token_get_text(self._llama.token_eos()),
            bos_token=vocab.token_get_text(self._llama.token_bos()),
        )

    def count_prompt(self, prompt: Any) -> int:
        """A legacy completion's prompt tokens: a text, texts, or token ids."""
        if isinstance(prompt, str):
            return len(self._llama.tokenize(prompt.encode("utf-8"), add_bos=True))
        if isinstance(prompt, list):
            if all(isinstance(item, int) for item in prompt):
                return len(prompt)
            return sum(self.count_prompt(item) for item in prompt)
        return 0

    def count(self, messages: Sequence[Mapping[str, Any]]) -> int:
        try:
            rendered = self._format(messages=list(messages))  # type: ignore[arg-type]
        except Exception as exc:  # the template's own error (Jinja, a missing key)
            # The server renders the same template: it would fail these messages too.
            raise InvalidRequest(
                "the embedded model's chat template cannot render these messages: "
                f"{client_safe_reason(str(exc))}",
                param="messages",
            ) from None
        tokens = self._llama.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return len(tokens)


def refuse_unsupported(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise UnsupportedParameter(
            "the embedded model generates one choice per request: n must be 1", param="n"
        )
    for name in _TOOL_PARAMS:
        if body.get(name):
            raise UnsupportedParameter(
                f"the embedded model does not support tool calling (`{name}`); "
                "use an upstream that does (MAX_SERVE_URL)",
                param=name,
            )
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind not in _RESPONSE_FORMATS:
            raise UnsupportedParameter(
                f"the embedded model supports response_format types {_RESPONSE_FORMATS}, "
                f"not {kind!r}",
                param="response_format",
            )
    for name in ("audio", "modalities", "prediction"):
        if body.get(name):
            raise UnsupportedParameter(f"the embedded model does not support `{name}`", param=name)


def translated(body: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "max_tokens" not in out and out.get("max_completion_tokens") is not None:
        out["max_tokens"] = out["max_completion_tokens"]
    out.pop("max_completion_tokens", None)
    out.pop("stream_options", None)
    return out


class _UsageAddingStream(StreamAround):
    """Relays the chunks, then adds the usage chunk OpenAI sends for include_usage."""

    def __init__(self, inner: ChatStream, prompt_tokens: int) -> None:
        super().__init__(inner)
        self.usage: Usage | None = None
        self._prompt_tokens = prompt_tokens
        self._usage_only = False

    @property
    def usage_only(self) -> bool:
        return self._usage_only

    async def __aiter__(self) -> AsyncIterator[bytes]:
        identity = ChunkHead()
        completion_tokens = 0
        async for payload in self._inner:
            identity = decode_chunk(payload)
            # llama.cpp streams one token per content chunk.
            completion_tokens += sum(
                1 for c in identity.choices if c.delta is not None and c.delta.content
            )
            yield payload
        self.usage = Usage(
            self._prompt_tokens, completion_tokens, self._prompt_tokens + completion_tokens
        )
        self._usage_only = True
        yield encode(
            {
                "id": identity.id or "",
                "object": "chat.completion.chunk",
                "created": identity.created or 0,
                "model": identity.model or self.model,
                "choices": [],
                "usage": usage_json(self.usage),
            }
        )


class EmbeddedLlamaChatModel:
    def __init__(
        self,
        inner: UpstreamChatModel,
        counter: LlamaPromptCounter,
        process: Supervised | None = None,
        *,
        timeout_s: float = 120.0,
    ) -> None:
        self._inner = inner
        self._counter = counter
        self._process = process
        self._timeout = timeout_s
        self.name = inner.name
        self.health_name = inner.health_name

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        """Streamed from the server and assembled into OpenAI's ``chat.completion``."""
        refuse_unsupported(body)
        sent = {**translated(body), "stream": True}
        prompt_tokens = self._counter.count(plain_messages(body)["messages"])
        stream = _UsageAddingStream(await self._inner.stream(sent), prompt_tokens)
        identity = ChunkHead()

        def read(payload: bytes) -> None:
            nonlocal identity
            chunk = decode_chunk(payload)
            if chunk.choices:
                identity = chunk

        await self._drain(stream, read)
        usage = stream.usage or Usage(prompt_tokens, 0, prompt_tokens)
        model = identity.model or str(body["model"])
        answer = {
            "id": identity.id or "",
            "object": "chat.completion",
            "created": identity.created or 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": stream.content},
                    "logprobs": None,
                    "finish_reason": stream.finish_reason,
                }
            ],
            "usage": usage_json(usage),
        }
        return Completion(
            body=encode(answer),
            model=model,
            usage=usage,
            content=stream.content,
            finish_reason=stream.finish_reason,
        )

    async def _drain(self, stream: ChatStream, read: Callable[[bytes], None]) -> None:
        """Each payload of ``stream`` to ``read``, the whole answer within the timeout
        (the server's read timeout bounds each token); the stream closed whatever
        happens (a cancelled request stops the generation)."""
        try:
            async with asyncio.timeout(self._timeout):
                async for payload in stream:
                    read(payload)
        except TimeoutError:
            raise UpstreamTimeout(
                f"inference upstream {self.name} did not finish the answer in time"
            ) from None
        finally:
            await stream.aclose()

    async def stream(self, body: Mapping[str, Any]) -> ChatStream:
        refuse_unsupported(body)
        stream = await self._inner.stream(translated(body))
        options = body.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage"):
            prompt_tokens = self._counter.count(plain_messages(body)["messages"])
            return _UsageAddingStream(stream, prompt_tokens)
        return stream

    async def complete_text(self, body: Mapping[str, Any]) -> Completion:
        """llama_cpp.server's own ``/v1/completions``, streamed from it and assembled
        (as ``complete``, so that a client going away stops the generation). Asks whose
        answer streaming would change (``logprobs``, ``echo``, ``best_of``, ``n``) are
        relayed as the server answers them."""
        sent = translated(body)
        n = sent.get("n")
        if any(sent.get(name) for name in _WHOLE_ANSWER_ONLY) or (isinstance(n, int) and n > 1):
            return await self._inner.complete_text(sent)
        prompt_tokens = self._counter.count_prompt(body.get("prompt", ""))
        stream = await self._inner.stream_text({**sent, "stream": True})
        identity, parts = TextChunkHead(), []

        def read(payload: bytes) -> None:
            nonlocal identity
            chunk = decode_text_chunk(payload)
            if chunk.choices:
                identity = chunk
                parts.append(chunk.choices[0].text)

        await self._drain(stream, read)
        completion_tokens = sum(1 for text in parts if text)  # one token a chunk
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        model = identity.model or str(body["model"])
        answer = {
            "id": identity.id or "",
            "object": "text_completion",
            "created": identity.created or 0,
            "model": model,
            "choices": [
                {"text": "".join(parts), "index": 0, "logprobs": None,
                 "finish_reason": stream.finish_reason}
            ],
            "usage": usage_json(usage),
        }  # fmt: skip
        return Completion(
            body=encode(answer),
            model=model,
            usage=usage,
            content="".join(parts),
            finish_reason=stream.finish_reason,
        )

    async def stream_text(self, body: Mapping[str, Any]) -> ChatStream:
        return await self._inner.stream_text(translated(body))

    @property
    def in_flight(self) -> int:
        return self._inner.in_flight

    @property
    def accepting(self) -> bool:
        return self._inner.accepting

    async def list_models(self) -> Sequence[ModelCard]:
        return await self._inner.list_models()

    async def check(self) -> ServiceHealth:
        """Down while the supervisor restarts the server (and why), else the server's."""
        process = self._process
        if process is not None and not process.running:
            return ServiceHealth(
                self.health_name, Status.UNHEALTHY, 0.0, process.describe(), critical=True
            )
        health = await self._inner.check()
        if process is not None and health.detail is None and process.restarts:
            return replace(health, detail=process.describe())  # up, after restarts
        return health

"""``FakeChatModel``: the ChatModel port in memory, answering like an OpenAI server.

It answers ``echo: <last user message>`` and counts tokens as whitespace-separated
words, so a test can predict every byte. Like ``tests/fakes/fake_upstream.py`` it
refuses a model it does not serve (404 ``model`` → ``UpstreamRejected``) and caps the
answer at ``max_completion_tokens`` (or ``max_tokens``) words with finish_reason
``length``."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from domain.chat import Completion, ModelCard, Usage
from domain.errors import UpstreamRejected
from domain.health import ServiceHealth, Status

CREATED = 1_700_000_000


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a multi-part content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return ""


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _words(text: str) -> int:
    return len(text.split())


class FakeChatStream:
    """The ChatStream port: ``chat.completion.chunk`` payloads, no SSE framing.

    ``usage`` is set when the usage chunk passes (only sent for include_usage), as the
    HTTP adapter does. Closing it (or finishing it) stops the chunks at once."""

    def __init__(self, model: str, payloads: list[bytes], usage: Usage | None) -> None:
        self.model = model
        self.usage: Usage | None = None
        self.content = ""
        self.finish_reason: str | None = None
        self.usage_only = False
        self.closed = False
        self.yielded = 0
        self._payloads = payloads
        self._final_usage = usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            last = len(self._payloads) - 1
            for index, payload in enumerate(self._payloads):
                if self.closed:
                    return
                if index == last and self._final_usage is not None:
                    self.usage = self._final_usage
                self.yielded += 1
                chunk = json.loads(payload)
                self.usage_only = not chunk["choices"] and chunk.get("usage") is not None
                for choice in chunk["choices"]:
                    self.content += choice["delta"].get("content") or ""
                    self.finish_reason = choice["finish_reason"] or self.finish_reason
                yield payload
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self.closed = True


class FakeChatModel:
    """Set ``failure`` to make ``complete``, ``stream`` and ``list_models`` raise it
    (and ``check`` report UNHEALTHY). ``requests`` holds every body received, in order,
    whether it was answered or not; ``streams`` every stream handed out."""

    def __init__(
        self,
        name: str = "fake",
        models: Sequence[str] = ("fake-model",),
        health_name: str = "fake_model",
    ) -> None:
        self.name = name
        self.models = list(models)
        self.health_name = health_name
        self.failure: Exception | None = None
        self.requests: list[Mapping[str, Any]] = []
        self.streams: list[FakeChatStream] = []
        self.list_models_calls = 0
        self.in_flight = 0  # tests set it to steer least-outstanding balancing
        self.accepting = True
        self._ids = itertools.count(1)

    def _accept(self, body: Mapping[str, Any]) -> str:
        self.requests.append(body)
        if self.failure is not None:
            raise self.failure
        model = body.get("model")
        if not isinstance(model, str) or model not in self.models:
            raise UpstreamRejected(f"model {model} not found", status=404, param="model")
        return model

    def _answer(self, body: Mapping[str, Any]) -> tuple[list[str], str, Usage]:
        messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        words = f"echo: {_text(last_user.get('content'))}".split()
        finish = "stop"
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(cap, int) and not isinstance(cap, bool) and cap < len(words):
            words, finish = words[: max(cap, 0)], "length"
        prompt = sum(_words(_text(m.get("content"))) for m in messages)
        return words, finish, Usage(prompt, len(words), prompt + len(words))

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        model = self._accept(body)
        words, finish, usage = self._answer(body)
        payload = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words)},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": _usage_json(usage),
        }
        return Completion(
            body=_dumps(payload),
            model=model,
            usage=usage,
            content=" ".join(words),
            finish_reason=finish,
        )

    async def stream(self, body: Mapping[str, Any]) -> FakeChatStream:
        model = self._accept(body)
        words, finish, usage = self._answer(body)
        head: dict[str, Any] = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
        }

        def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return _dumps({**head, "choices": [choice]})

        payloads = [chunk({"role": "assistant", "content": ""})]
        payloads += [chunk({"content": w if i == 0 else f" {w}"}) for i, w in enumerate(words)]
        payloads.append(chunk({}, finish))
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        if include_usage:
            payloads.append(_dumps({**head, "choices": [], "usage": _usage_json(usage)}))
        stream = FakeChatStream(model, payloads, usage if include_usage else None)
        self.streams.append(stream)
        return stream

    async def list_models(self) -> Sequence[ModelCard]:
        self.list_models_calls += 1
        if self.failure is not None:
            raise self.failure
        return [ModelCard(id=m, owned_by=self.name, created=CREATED) for m in self.models]

    async def check(self) -> ServiceHealth:
        if self.failure is not None:
            return ServiceHealth(
                self.health_name, Status.UNHEALTHY, 0.0, str(self.failure), critical=True
            )
        return ServiceHealth(self.health_name, Status.HEALTHY, 0.0, critical=True)

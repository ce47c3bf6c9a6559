"""``OpenAICompatibleChatModel``: any server speaking OpenAI's chat API over HTTP
(MAX Serve, vLLM, llama.cpp server, Ollama, TGI...), through a pooled httpx client.

One request, one answer: turns, retries and the circuit breaker wrap it
(``ResilientChatModel``); the wire structs, the transport's error map and the stream
relay are modules of their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import httpx
import msgspec

from adapters.inference.openai_wire import (
    MALFORMED,
    api_base,
    decode_completion,
    decode_models,
    encode,
    error_reason,
)
from adapters.inference.plain_messages import plain_messages
from adapters.inference.stream_relay import SSEChatStream
from adapters.inference.transport_errors import (
    RetryableOverloaded,
    RetryableUnavailable,
    TranslatedTransport,
    retry_after,
)
from domain.chat import Completion, ModelCard
from domain.errors import TextCompletionsUnsupported, UpstreamRejected, UpstreamUnavailable
from domain.health import ServiceHealth, Status
from ports.telemetry import Telemetry

__all__ = ["KNOWN_GOOD_MESSAGES", "PROBE_TRUST_S", "OpenAICompatibleChatModel", "api_base"]

# A request the upstream fails with a 500 is answered 400 (its own fault, not counted
# against the upstream) when this request, known to be good, is served just after.
KNOWN_GOOD_MESSAGES = [{"role": "user", "content": "Hi"}]
# How long a served known-good request vouches for the upstream: repeated bad requests
# cost one probe per this period, not one each.
PROBE_TRUST_S = 2.0


class OpenAICompatibleChatModel:
    """``name`` identifies the upstream (its base URL by default). ``timeout_s`` bounds
    a whole answer (httpx's timeouts bound each read). ``plain_messages``: the upstream
    knows only ``{"role", "content": str}`` messages (see ``plain_messages``).
    ``telemetry`` hears of each probe (see ``KNOWN_GOOD_MESSAGES``)."""

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        name: str | None = None,
        health_name: str = "max_serve",
        api_key: str | None = None,
        plain_messages: bool = False,
        timeout_s: float = 120.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._base = api_base(base_url)
        self.name = name or self._base
        self.health_name = health_name
        self._client = client
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # What client.build_request merges on every request, merged once: the client's
        # default headers under ours (and the Host header first, as httpx puts it), the
        # URL parsed, the timeout as an extension.
        self._chat_url = httpx.URL(f"{self._base}/chat/completions")
        self._text_url = httpx.URL(f"{self._base}/completions")
        merged = httpx.Headers(client.headers)
        merged.update(self._headers)
        self._post_headers = [(b"Host", self._chat_url.netloc), *merged.raw]
        merged["Accept"] = "text/event-stream"
        self._stream_headers = [(b"Host", self._chat_url.netloc), *merged.raw]
        self._translated = TranslatedTransport(self.name)
        self._extensions = {"timeout": httpx.Timeout(timeout_s).as_dict()}
        self._in_flight = 0
        self._plain = plain_messages
        self._probe: asyncio.Future[bool] | None = None
        self._vouched_until = float("-inf")
        self._timeout = timeout_s
        self._telemetry = telemetry

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def accepting(self) -> bool:
        return True  # a circuit breaker, when wanted, wraps the adapter

    def _release(self) -> None:
        self._in_flight -= 1

    async def _vouched_for(self, model: str) -> bool:
        """Does the upstream serve a known-good request now? One probe at a time, its
        success trusted for ``PROBE_TRUST_S``."""
        if time.monotonic() < self._vouched_until:
            return True
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_once(model))
        # Shielded: a caller that goes away does not cancel the others' probe.
        return await asyncio.shield(self._probe)

    async def _probe_once(self, model: str) -> bool:
        body = {"model": model, "messages": KNOWN_GOOD_MESSAGES, "max_tokens": 1}
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.send(self._chat_request(body, stream=False))
            served = response.status_code == 200 and bool(
                decode_completion(response.content).choices
            )
        except (httpx.HTTPError, aiohttp.ClientError, OSError, msgspec.MsgspecError):
            served = False  # TimeoutError is an OSError
        if served:
            self._vouched_until = time.monotonic() + PROBE_TRUST_S
        if self._telemetry is not None:
            self._telemetry.event("probe", self.name, served=served)
        return served

    async def _raise_for_status(
        self, response: httpx.Response, body: Mapping[str, Any] | None = None
    ) -> None:
        status = response.status_code
        if status < 400:
            return
        message, param = error_reason(response.content, response.reason_phrase)
        if status in (401, 403):
            # The gateway's own upstream credentials, not the client's: a gateway fault.
            raise UpstreamUnavailable(
                f"inference upstream {self.name} refused the gateway's credentials "
                f"({status}); check MAX_SERVE_API_KEY"
            )
        if status in (429, 503):
            raise RetryableOverloaded(
                f"inference upstream {self.name} is overloaded: {message}",
                retry_after(response),
            )
        if status == 502:
            raise RetryableUnavailable(f"inference upstream {self.name} failed with status 502")
        if status >= 500:
            if body is not None and await self._vouched_for(str(body.get("model"))):
                # The upstream serves a good request: this one failed it (a role,
                # a parameter it chokes on). The client's fault, not the upstream's.
                raise UpstreamRejected(
                    f"{message} (the upstream failed this request with status {status} "
                    "and serves others)",
                    status=400,
                    param=param,
                )
            raise UpstreamUnavailable(f"inference upstream {self.name} failed with status {status}")
        # A validation error (FastAPI's 422) is a bad request to an OpenAI client.
        raise UpstreamRejected(message, status=400 if status == 422 else status, param=param)

    def _chat_request(
        self, body: Mapping[str, Any], *, stream: bool, url: httpx.URL | None = None
    ) -> httpx.Request:
        """The request ``client.build_request`` would build (same headers in the same
        order, same body and timeout), without merging the client's settings again on
        every request (measured: 3 % of a request's CPU)."""
        content = encode(body)
        headers = self._stream_headers if stream else self._post_headers
        request = httpx.Request(
            "POST",
            url or self._chat_url,
            headers=[*headers, (b"Content-Length", b"%d" % len(content))],
            stream=httpx.ByteStream(content),
            extensions=self._extensions,
        )
        request.read()  # the body is in memory: readable as request.content
        if self._client.cookies:
            # Cookies an upstream set are sent back, as build_request would.
            httpx.Cookies(self._client.cookies).set_cookie_header(request)
        return request

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        return await self._complete(plain_messages(body) if self._plain else body)

    async def stream(self, body: Mapping[str, Any]) -> SSEChatStream:
        """Returns once the upstream accepted the request."""
        return await self._stream(plain_messages(body) if self._plain else body)

    async def complete_text(self, body: Mapping[str, Any]) -> Completion:
        """Legacy ``/v1/completions``, relayed as the upstream answers it."""
        return await self._complete(body, self._text_url)

    async def stream_text(self, body: Mapping[str, Any]) -> SSEChatStream:
        return await self._stream(body, self._text_url)

    def _no_text_completions(self, response: httpx.Response, url: httpx.URL | None) -> None:
        if url is self._text_url and response.status_code in (404, 405):
            raise TextCompletionsUnsupported(
                f"the upstream serving this model ({self.name}) does not serve "
                "/v1/completions; use /v1/chat/completions",
                param="model",
            )

    async def _complete(self, body: Mapping[str, Any], url: httpx.URL | None = None) -> Completion:
        self._in_flight += 1
        try:
            # httpx's timeouts bound each read; this bounds the whole answer.
            with self._translated:
                async with asyncio.timeout(self._timeout):
                    response = await self._client.send(
                        self._chat_request(body, stream=False, url=url)
                    )
        finally:
            self._release()
        self._no_text_completions(response, url)
        await self._raise_for_status(response, body)
        try:
            head = decode_completion(response.content)
        except MALFORMED as exc:
            raise UpstreamUnavailable(
                f"inference upstream {self.name} answered something that is not a chat completion"
            ) from exc
        usage = head.usage.domain() if head.usage else None
        first = head.choices[0] if head.choices else None
        return Completion(
            content=first.message.content if first and first.message else None,
            finish_reason=first.finish_reason if first else None,
            body=response.content,
            model=head.model or str(body["model"]),
            usage=usage,
        )

    async def _stream(self, body: Mapping[str, Any], url: httpx.URL | None = None) -> SSEChatStream:
        self._in_flight += 1
        try:
            request = self._chat_request(body, stream=True, url=url)
            with self._translated:
                async with asyncio.timeout(self._timeout):
                    response = await self._client.send(request, stream=True)
                if response.status_code >= 400:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
        except BaseException:
            self._release()
            raise
        if response.status_code >= 400:
            self._release()
            self._no_text_completions(response, url)
            await self._raise_for_status(response, body)
        return SSEChatStream(response, str(body["model"]), self._translated, self._release)

    async def list_models(self) -> Sequence[ModelCard]:
        with self._translated:
            response = await self._client.get(
                f"{self._base}/models", headers=self._headers, timeout=self._timeout
            )
        await self._raise_for_status(response)
        try:
            listed = decode_models(response.content)
        except MALFORMED as exc:
            raise UpstreamUnavailable(
                f"inference upstream {self.name} answered /models with something unexpected"
            ) from exc
        return [
            ModelCard(id=m.id, owned_by=m.owned_by or self.name, created=m.created or 0)
            for m in listed.data
        ]

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            await self.list_models()
        except Exception as exc:
            return ServiceHealth(
                self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc), critical=True
            )
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started), critical=True)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

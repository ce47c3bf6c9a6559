"""``OpenAIResponsesUpstream``: an upstream's own ``/v1/responses`` (vLLM, OpenAI, a
proxy in front of them), the request forwarded as it is and the answer relayed as it
comes. No retry, failover or circuit of its own: the chat adapter of the same upstream
has them, and translation onto it stays the default (see ``GATEWAY_RESPONSES_PASSTHROUGH``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import msgspec

from adapters.inference.openai_wire import MALFORMED, api_base, encode, error_reason
from adapters.inference.sse import sse_data
from adapters.inference.stream_relay import SSERelay
from adapters.inference.transport_errors import TranslatedTransport
from domain.chat import Completion, Usage
from domain.errors import GatewayError, UpstreamOverloaded, UpstreamRejected, UpstreamUnavailable


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def domain(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens, self.total_tokens)


class _Response(msgspec.Struct):
    model: str = ""
    status: str | None = None
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str = ""
    response: _Response | None = None
    delta: str | None = None


_decode_response = msgspec.json.Decoder(_Response).decode
_decode_event = msgspec.json.Decoder(_Event).decode
_ENDS = ("response.completed", "response.incomplete", "response.failed")


def _refusal(upstream: str, response: httpx.Response) -> GatewayError:
    status = response.status_code
    if status in (429, 503):
        return UpstreamOverloaded(f"inference upstream {upstream} is overloaded")
    if status >= 500 or status in (401, 403):
        return UpstreamUnavailable(f"inference upstream {upstream} failed with status {status}")
    message, param = error_reason(
        response.content, f"inference upstream {upstream} refused the request"
    )
    return UpstreamRejected(message, status=400 if status == 422 else status, param=param)


class _ResponseEvents(SSERelay):
    """The upstream's events, each payload as it came; ``usage`` and ``finish_reason``
    once its last event passed (an end without one is an error, not a whole answer)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        upstream = self._translated.upstream
        try:
            with self._translated:
                async for payload in sse_data(self._response.aiter_raw()):
                    try:
                        event = _decode_event(payload)
                    except MALFORMED as exc:
                        raise UpstreamUnavailable(
                            f"inference upstream {upstream} sent a malformed event"
                        ) from exc
                    if event.type == "response.output_text.delta" and event.delta:
                        self._parts.append(event.delta)
                    elif event.type in _ENDS and event.response is not None:
                        self.finish_reason = event.response.status or event.type
                        if event.response.usage is not None:
                            self.usage = event.response.usage.domain()
                    yield payload
                if self.finish_reason is None:
                    raise UpstreamUnavailable(
                        f"inference upstream {upstream} ended the response before it was done"
                    )
        finally:
            await self.aclose()


class OpenAIResponsesUpstream:
    """``name`` is the upstream's, as its chat adapter names it (its API base)."""

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.name = api_base(base_url)
        self._url = f"{self.name}/responses"
        self._client = client
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout_s
        self._translated = TranslatedTransport(self.name)

    async def respond(self, body: Mapping[str, Any]) -> Completion:
        with self._translated:
            response = await self._client.post(
                self._url, content=encode(body), headers=self._headers, timeout=self._timeout
            )
        if response.status_code >= 400:
            raise _refusal(self.name, response)
        try:
            head = _decode_response(response.content)
        except MALFORMED as exc:
            raise UpstreamUnavailable(
                f"inference upstream {self.name} answered something that is not a response"
            ) from exc
        return Completion(
            body=response.content,
            model=head.model or str(body["model"]),
            usage=head.usage.domain() if head.usage else None,
            finish_reason=head.status,
        )

    async def stream_response(self, body: Mapping[str, Any]) -> _ResponseEvents:
        request = self._client.build_request(
            "POST", self._url, content=encode(body), timeout=self._timeout,
            headers={**self._headers, "Accept": "text/event-stream"},
        )  # fmt: skip
        with self._translated:
            response = await self._client.send(request, stream=True)
            if response.status_code >= 400:
                await response.aread()
                await response.aclose()
        if response.status_code >= 400:
            raise _refusal(self.name, response)
        return _ResponseEvents(response, str(body["model"]), self._translated)

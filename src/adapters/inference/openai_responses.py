"""``OpenAIResponsesUpstream``: an upstream's own ``/v1/responses`` (vLLM, OpenAI, a
proxy in front of them), the request forwarded as it is and the answer relayed as it
comes. No retry, failover or circuit of its own: the chat adapter of the same upstream
has them, and translation onto it stays the default (see ``GATEWAY_RESPONSES_PASSTHROUGH``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import msgspec

from adapters.inference.openai_compatible import api_base
from adapters.inference.sse import sse_data
from domain.chat import Completion, Usage
from domain.errors import (
    GatewayError,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)


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


class _ErrorDetail(msgspec.Struct):
    message: str = ""
    param: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | None = None


_decode_response = msgspec.json.Decoder(_Response).decode
_decode_event = msgspec.json.Decoder(_Event).decode
_decode_error = msgspec.json.Decoder(_ErrorBody).decode
_encode = msgspec.json.Encoder().encode
_ENDS = ("response.completed", "response.incomplete", "response.failed")


def _port_error(upstream: str, exc: httpx.HTTPError) -> GatewayError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"inference upstream {upstream} did not answer in time")
    return UpstreamUnavailable(f"inference upstream {upstream} is unreachable")


def _refusal(upstream: str, response: httpx.Response) -> GatewayError:
    status = response.status_code
    if status in (429, 503):
        return UpstreamOverloaded(f"inference upstream {upstream} is overloaded")
    if status >= 500 or status in (401, 403):
        return UpstreamUnavailable(f"inference upstream {upstream} failed with status {status}")
    try:
        detail = _decode_error(response.content).error or _ErrorDetail()
    except msgspec.MsgspecError:
        detail = _ErrorDetail()
    message = detail.message or f"inference upstream {upstream} refused the request"
    return UpstreamRejected(message, status=400 if status == 422 else status, param=detail.param)


class _ResponseEvents:
    """The upstream's events, each payload as it came; ``usage`` and ``finish_reason``
    once its last event passed (an end without one is an error, not a whole answer)."""

    def __init__(self, response: httpx.Response, model: str, upstream: str) -> None:
        self.model = model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._parts: list[str] = []
        self._response = response
        self._upstream = upstream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for payload in sse_data(self._response.aiter_raw()):
                try:
                    event = _decode_event(payload)
                except msgspec.MsgspecError as exc:
                    raise UpstreamUnavailable(
                        f"inference upstream {self._upstream} sent a malformed event"
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
                    f"inference upstream {self._upstream} ended the response before it was done"
                )
        except httpx.HTTPError as exc:
            raise _port_error(self._upstream, exc) from exc
        finally:
            await self.aclose()

    @property
    def content(self) -> str:
        return "".join(self._parts)

    async def aclose(self) -> None:
        await self._response.aclose()


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

    async def respond(self, body: Mapping[str, Any]) -> Completion:
        try:
            response = await self._client.post(
                self._url, content=_encode(body), headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise _port_error(self.name, exc) from exc
        if response.status_code >= 400:
            raise _refusal(self.name, response)
        try:
            head = _decode_response(response.content)
        except msgspec.MsgspecError as exc:
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
            "POST", self._url, content=_encode(body), timeout=self._timeout,
            headers={**self._headers, "Accept": "text/event-stream"},
        )  # fmt: skip
        try:
            response = await self._client.send(request, stream=True)
            if response.status_code >= 400:
                await response.aread()
                await response.aclose()
        except httpx.HTTPError as exc:
            raise _port_error(self.name, exc) from exc
        if response.status_code >= 400:
            raise _refusal(self.name, response)
        return _ResponseEvents(response, str(body["model"]), self.name)

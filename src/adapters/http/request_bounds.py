"""What a client may send before the application sees it: a request target and
headers of bounded size (414 and 431 in OpenAI's error body), a body that arrives
within a deadline (408), and a body the client abandons (499, logged, never sent).

The HTTP server (granian) refuses a target of 64 KiB or more, a head over ~400 KiB or
over 100 header fields itself, with an empty body; the bounds here are well below those,
so that the gateway answers."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar.exceptions import HTTPException

from adapters.http.asgi_types import Message, Receive, Scope, Send
from adapters.http.disconnect import CLIENT_CLOSED_REQUEST
from adapters.http.errors import error_body


class BodyReadTimeout(HTTPException):
    status_code = 408


class ClientClosedRequest(HTTPException):
    status_code = CLIENT_CLOSED_REQUEST


class RequestBounds:
    def __init__(
        self, *, max_target_bytes: int, max_header_bytes: int, body_timeout_s: float
    ) -> None:
        self.max_target_bytes = max_target_bytes
        self.max_header_bytes = max_header_bytes
        self.body_timeout_s = body_timeout_s

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The ``receive`` to give the application (its body read within the deadline),
        or None when the request is refused here (the refusal is sent)."""
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if target > self.max_target_bytes:
            message = f"the request target is {target} bytes; at most {self.max_target_bytes}"
            await _refuse(send, 414, message, "uri_too_long")
            return None
        head = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if head > self.max_header_bytes:
            message = f"the request headers are {head} bytes; at most {self.max_header_bytes}"
            await _refuse(send, 431, message, "headers_too_large")
            return None
        return self._bounded(receive)

    def _bounded(self, receive: Receive) -> Receive:
        deadline = time.monotonic() + self.body_timeout_s
        body_done = False

        async def bounded_receive() -> Message:
            nonlocal body_done
            if body_done:  # afterwards: waiting for a disconnect is not bounded
                return await receive()
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeout(
                    detail=f"the request body did not arrive within {self.body_timeout_s:g} s"
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientClosedRequest(detail="the client closed the request")
            if not message.get("more_body", False):
                body_done = True
            return message

        return bounded_receive


async def _refuse(send: Send, status: int, message: str, code: str) -> None:
    body = msgspec.json.encode(error_body(message, "invalid_request_error", None, code))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

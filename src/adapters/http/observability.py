"""Per request: an id (accepted from or returned in ``X-Request-ID``), metrics, and one
structured log line. A plain ASGI wrapper around the whole app, so that every answer
is counted, unknown routes and refused keys included."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import time
from typing import Any

import structlog

from adapters.http.asgi_types import ASGIApp, Message, Receive, Scope, Send
from adapters.http.ratelimit import STATE_KEY, ratelimit_raw_headers
from adapters.http.request_bounds import RequestBounds
from adapters.telemetry.metrics import RequestMetrics

# An API answers JSON and event streams: no sniffing, no framing, no referrer.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000"),
)

log = structlog.get_logger("gateway.access")
_SHUTTING_DOWN = (
    b'{"error":{"message":"the gateway is shutting down; retry","type":"server_error",'
    b'"param":null,"code":"shutting_down"}}'
)
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_random_bits = random.getrandbits


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _VALID_REQUEST_ID.match(value):
                return bytes(value)
            break
    # As long as a uuid4's hex, without a system call per request (a correlation id,
    # not a secret; the generator is seeded again in each forked worker).
    return b"%032x" % _random_bits(128)


def route_of(scope: Scope) -> str:
    # The matched route's template, never the raw path: bounded label cardinality.
    return scope.get("path_template") or "unmatched"


class InFlight:
    """Requests being answered now; a graceful shutdown waits for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)

    def leave(self) -> None:
        self.count -= 1
        self._tasks.discard(asyncio.current_task())
        if self.count == 0:
            self._idle.set()

    def cancel(self) -> int:
        """Stop the requests still running (a shutdown past its grace period)."""
        self.stopping = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def drained(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class RequestObservability:
    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        in_flight: InFlight,
        *,
        bounds: RequestBounds | None = None,
        retry_after_s: float = 10.0,
    ) -> None:
        self.app = app
        self._bounds = bounds
        self._metrics = metrics
        self._in_flight = in_flight
        # Every 503 says when to come back, also those no exception handler made.
        self._retry_after = (b"retry-after", str(max(1, math.ceil(retry_after_s))).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        request_id_text = request_id.decode()
        scope.setdefault("state", {})["request_id"] = request_id_text
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id),
                    *SECURITY_HEADERS,
                ]
                if status == 503 and not any(n.lower() == b"retry-after" for n, _ in headers):
                    headers.append(self._retry_after)
                admission = scope["state"].get(STATE_KEY)
                if admission is not None and status != 429:  # a 429 carries its own
                    headers += ratelimit_raw_headers(admission)
                message["headers"] = headers
            await send(message)

        self._in_flight.enter()
        try:
            if self._bounds is not None:
                bounded = await self._bounds.admit(scope, receive, send_with_id)
                if bounded is not None:
                    await self.app(scope, bounded, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not self._in_flight.stopping:
                raise
            # Stopped by a shutdown past its grace: an answer, not a server error.
            if not responded:
                status = 503
                with contextlib.suppress(Exception):
                    await send_with_id(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    await send_with_id({"type": "http.response.body", "body": _SHUTTING_DOWN})
        finally:
            self._in_flight.leave()
            elapsed = time.perf_counter() - started
            route = route_of(scope)
            user: Any = scope.get("user")
            tenant = getattr(user, "tenant", None)
            self._metrics.record(route, scope["method"], status, elapsed, tenant)
            extra = scope["state"].get("log") or {}
            log.info(
                "request",
                **extra,
                request_id=request_id_text,
                method=scope["method"],
                route=route,
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                key_id=getattr(user, "key_id", None),
            )

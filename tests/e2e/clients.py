"""How the end-to-end suites talk to a gateway: keys, chat bodies, server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FakeUpstream, GatewayProcess
from tests.e2e.conftest import ADMIN_KEY, STANDARD_KEY
from tests.in_process import InProcessGateway

CHAT_PATH = "/v1/chat/completions"
DONE = "[DONE]"
T = TypeVar("T")


def bearer(key: str = STANDARD_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


Gateway = GatewayProcess | InProcessGateway


def api_client(
    gateway: Gateway, key: str | None = STANDARD_KEY, *, timeout: float = 30.0
) -> httpx.Client:
    """An httpx client for ``gateway`` (a process, or the app in this one), sending
    ``key`` (none when ``None``)."""
    headers = bearer(key) if key is not None else {}
    transport = gateway.transport() if isinstance(gateway, InProcessGateway) else None
    return httpx.Client(base_url=gateway.url, headers=headers, timeout=timeout, transport=transport)


def async_api_client(
    gateway: Gateway, key: str | None = STANDARD_KEY, *, timeout: float = 60.0
) -> httpx.AsyncClient:
    """The same as ``api_client`` for async code: requests sent together are served
    together (connections unbounded: the gateway's own limits are what is tested)."""
    headers = bearer(key) if key is not None else {}
    if isinstance(gateway, InProcessGateway):
        return httpx.AsyncClient(
            base_url=gateway.url, headers=headers, timeout=timeout,
            transport=gateway.async_transport(),
        )  # fmt: skip
    return httpx.AsyncClient(
        base_url=gateway.url, headers=headers, timeout=timeout,
        limits=httpx.Limits(max_connections=None),
    )  # fmt: skip


def chat_body(content: str, **params: Any) -> dict[str, Any]:
    """A chat completion request with one user message."""
    return {"messages": [{"role": "user", "content": content}], **params}


def post_chat(gateway: Gateway, **request: Any) -> httpx.Response:
    """POST /v1/chat/completions with the standard key; ``request`` goes to httpx."""
    headers = request.pop("headers", {})
    with api_client(gateway, timeout=request.pop("timeout", 30.0)) as client:
        return client.post(CHAT_PATH, headers=headers, **request)


def sse_data(text: str) -> list[str]:
    """The ``data`` of each event of a ``text/event-stream`` body, ``[DONE]`` included."""
    return [line.removeprefix("data: ") for line in text.split("\n") if line.startswith("data: ")]


def sse_chunks(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of an event stream, ``[DONE]`` left out."""
    return [json.loads(data) for data in sse_data(text) if data != DONE]


def eventually(probe: Callable[[], T | None], within_s: float = 10.0) -> T | None:
    """Polls ``probe`` until it returns something truthy or ``within_s`` has passed."""
    deadline = time.monotonic() + within_s
    while True:
        found = probe()
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def access_log_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    """The gateway's per-request JSON log lines (the server's own lines left out)."""
    lines = []
    for line in gateway.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "request":
                lines.append(entry)
    return lines


def logged_request(gateway: GatewayProcess, request_id: str) -> list[dict[str, Any]]:
    """The access log lines of ``request_id``, once at least one is written."""
    found = eventually(
        lambda: [e for e in access_log_lines(gateway) if e["request_id"] == request_id]
    )
    return found or []


def last_upstream_request(upstream: FakeUpstream) -> dict[str, Any]:
    """The body the fake upstream received last."""
    request: dict[str, Any] = upstream.stats()["last_request"]  # type: ignore[assignment]
    return request


def upstream_events(gateway: Gateway) -> dict[tuple[str, str], float]:
    """``gateway_upstream_events_total`` by (event, target), from the Prometheus text."""
    with api_client(gateway, ADMIN_KEY) as client:
        text = client.get("/metrics", params={"format": "prometheus"}).text
    return {
        (sample.labels["event"], sample.labels["target"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "gateway_upstream_events"
        for sample in family.samples
        if sample.name == "gateway_upstream_events_total"
    }

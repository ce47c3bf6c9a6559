"""Request hygiene: conversation bounds, the tier's max_tokens cap, CORS for the
configured origins only, security headers (on the app served in this process), and a
graceful shutdown (of a gateway process, on SIGTERM)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeUpstream, start_gateway, stop
from tests.e2e.clients import api_client, bearer, chat_body
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def strict_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "GATEWAY_MAX_MESSAGES": "3",
        "GATEWAY_MAX_CONTENT_CHARS": "100",
        "GATEWAY_CORS_ORIGINS": ORIGIN,
        "GATEWAY_TIER_LIMITS": '{"standard": {"max_tokens": 64}}',
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("strict")) as gateway:
        yield gateway


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/chat"])
def test_conversation_bounds_name_the_field(strict_gateway: InProcessGateway, path: str) -> None:
    with api_client(strict_gateway) as client:
        many = {"messages": [{"role": "user", "content": "hi"}] * 4}
        assert_openai_error(client.post(path, json=many), 400, param="messages")
        long = chat_body("x" * 101)
        assert_openai_error(client.post(path, json=long), 400, param="messages[0].content")
        capped = chat_body("hi", max_tokens=65)
        assert_openai_error(client.post(path, json=capped), 400, param="max_tokens")
        fine = client.post(path, json=chat_body("hi", max_tokens=64))
    assert fine.status_code == 200, fine.text


def test_cors_only_for_configured_origins(strict_gateway: InProcessGateway) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    with api_client(strict_gateway, key=None) as client:
        allowed = client.options("/v1/chat/completions", headers={"Origin": ORIGIN, **preflight})
        other = client.options(
            "/v1/chat/completions", headers={"Origin": "https://evil.example", **preflight}
        )
    assert allowed.headers.get("access-control-allow-origin") == ORIGIN
    assert other.headers.get("access-control-allow-origin") is None


def test_security_headers_on_every_answer(strict_gateway: InProcessGateway) -> None:
    with api_client(strict_gateway, key=None) as anonymous, api_client(strict_gateway) as client:
        responses = (
            anonymous.get("/health/live"),
            anonymous.get("/v1/models"),  # a 401
            client.get("/v1/models"),
        )
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_sigterm_lets_an_open_stream_finish(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = start_gateway(
        {"MAX_SERVE_URL": fake_upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model"}, tmp_path
    )
    try:
        body = chat_body("__slow_stream__", stream=True)
        received: list[str] = []
        with httpx.stream(
            "POST", f"{gateway.url}/v1/chat/completions", headers=bearer(), json=body, timeout=60
        ) as response:
            lines = response.iter_lines()
            received.append(next(lines))
            threading.Timer(0.2, gateway.process.send_signal, (signal.SIGTERM,)).start()
            received.extend(lines)
        events = [line for line in received if line]
        assert events[-1] == "data: [DONE]"
        assert sum(1 for line in received if line.startswith("data: {")) >= 50
        assert gateway.process.wait(30) == 0
    finally:
        stop(gateway.process)  # type: ignore[arg-type]

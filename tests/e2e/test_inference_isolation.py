"""What one client sends never denies service to the others: the gateway's app (served
in process) in front of a strict fake upstream (it fails a ``developer`` role with a 500
whose text is an exception's, a list ``content`` with a 422, a penalty out of range
with a 400). Those requests are 400s naming the reason, never counted against the
upstream: its circuit stays closed for every other key. An upstream that fails every
request does open it, and ``/health`` says which upstream and when it is retried."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, start_fake_upstream, stop
from tests.e2e.clients import CHAT_PATH, DONE, api_client, bearer, chat_body, eventually, sse_data
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY, UNLIMITED, shared_fake_env
from tests.e2e.openai_errors import assert_openai_error
from tests.e2e.test_unified_chat import ROOMY, listed, tell, unique
from tests.in_process import InProcessGateway, in_process_gateway

CIRCUIT_FAILURES = 3
UNIFIED = "/v1/chat"
NO_RETRIEVAL = {"use_memory": False, "use_rag": False, "store_memory": False}
DEVELOPER = {"role": "developer", "content": "Answer briefly."}
USER = {"role": "user", "content": "hi"}
# Plausible OpenAI bodies the strict upstream cannot take, and what its refusal says.
MALFORMED = {
    CHAT_PATH: [
        ({"messages": [DEVELOPER, USER]}, "unexpected role 'developer'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            "Input should be a valid string",
        ),
        (chat_body("hi", frequency_penalty=5), "frequency_penalty"),
    ],
    UNIFIED: [({"messages": [DEVELOPER, USER], **NO_RETRIEVAL}, "unexpected role 'developer'")],
}
GOOD = {CHAT_PATH: chat_body("hi"), UNIFIED: {"messages": [USER], **NO_RETRIEVAL}}
# What the upstream's exception text holds that no client may see.
SECRETS = ("Traceback", "sk-upstream", "/opt/upstream", "server.py")


def env(upstream: FakeUpstream, **extra: str) -> dict[str, str]:
    return {
        "MAX_SERVE_URL": upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "GATEWAY_CIRCUIT_FAILURES": str(CIRCUIT_FAILURES),
        "GATEWAY_CIRCUIT_COOLDOWN_S": "30",
        "GATEWAY_TIER_LIMITS": UNLIMITED,
        **extra,
    }


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    upstream = start_fake_upstream("--model", "fake-model", "--strict")
    try:
        with in_process_gateway(env(upstream), tmp_path_factory.mktemp("strict")) as gateway:
            yield gateway
    finally:
        stop(upstream.process)


@pytest.fixture(scope="module")
def lenient_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """In front of the suites' lenient fake upstream, served in process."""
    env = shared_fake_env(fake_upstream)
    with in_process_gateway(env, tmp_path_factory.mktemp("fake")) as gateway:
        yield gateway


@pytest.mark.parametrize("path", [CHAT_PATH, UNIFIED], ids=["chat-completions", "unified-chat"])
def test_malformed_requests_from_one_key_never_deny_another(
    strict_gateway: InProcessGateway, path: str
) -> None:
    with (
        api_client(strict_gateway, STANDARD_KEY) as sender,
        api_client(strict_gateway, DEVELOPER_KEY) as other,
    ):
        for number in range(3 * CIRCUIT_FAILURES):
            body, reason = MALFORMED[path][number % len(MALFORMED[path])]
            error = assert_openai_error(sender.post(path, json=body), 400)
            assert reason in error["message"], error
            assert not [s for s in SECRETS if s in error["message"]], error
        served = other.post(path, json=GOOD[path])
        health = other.get("/health", headers=bearer(ADMIN_KEY))
    assert served.status_code == 200, served.text
    assert served.json()["choices"][0]["message"]["content"]
    assert health.json()["services"]["max_serve"] == {
        **health.json()["services"]["max_serve"],
        "status": "healthy",
        "detail": None,
    }


def test_an_upstream_failing_every_request_opens_its_circuit_and_health_says_so(
    tmp_path: Path,
) -> None:
    upstream = start_fake_upstream("--model", "fake-model")
    outage = f"http://127.0.0.1:{upstream.port}/_fake/outage"
    try:
        httpx.post(outage, json={"status": 500})
        with (
            in_process_gateway(env(upstream, GATEWAY_CIRCUIT_COOLDOWN_S="2"), tmp_path) as gateway,
            api_client(gateway) as client,
            api_client(gateway, None, timeout=10) as nobody,
        ):
            failed = [client.post(CHAT_PATH, json=chat_body("hi")) for _ in range(CIRCUIT_FAILURES)]
            refused = client.post(CHAT_PATH, json=chat_body("hi"))
            public = client.get("/health", headers={})
            anonymous = nobody.get("/health")
            admin = client.get("/health", headers=bearer(ADMIN_KEY))
            ready = nobody.get("/health/ready")
            httpx.post(outage, json={"status": 0})

            def served_again() -> bool:
                return client.post(CHAT_PATH, json=chat_body("hi")).status_code == 200

            recovered = eventually(served_again, within_s=20)
            ready_after = nobody.get("/health/ready")
    finally:
        stop(upstream.process)
    for response in failed:
        error = assert_openai_error(response, 502, code="upstream_unavailable")
        assert "outage" not in error["message"]  # a server error's own text stays upstream
    assert "circuit is open" in assert_openai_error(refused, 503)["message"]
    # Anyone: up or down per dependency, nothing about hosts, ports or errors.
    for response in (public, anonymous):
        assert response.status_code == 200
        health: dict[str, Any] = response.json()
        assert health["status"] == "degraded"
        assert health["services"]["max_serve"]["status"] == "degraded"
        assert all(s["detail"] is None for s in health["services"].values()), health
        assert str(upstream.port) not in response.text
    # An admin: which upstream, and when it is tried again.
    detail = admin.json()["services"]["max_serve"]["detail"]
    assert upstream.url in detail
    assert "retried in" in detail
    assert ready.status_code == 503
    assert recovered
    assert ready_after.status_code == 200


@pytest.mark.parametrize("path", [CHAT_PATH, UNIFIED], ids=["chat-completions", "unified-chat"])
def test_a_stream_cut_short_is_an_error_event_and_never_remembered(
    lenient_gateway: InProcessGateway, path: str
) -> None:
    """An answer that ends without a finish_reason (llama.cpp's interrupted answer: a
    plain [DONE]) is not relayed as a whole one, nor stored as a turn."""
    user = unique("cut")
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "__cut_stream__"}]}
    if path == UNIFIED:
        body |= {"user_id": user, "use_rag": False, **ROOMY}
    with api_client(lenient_gateway) as client:
        with client.stream("POST", path, json={**body, "stream": True}) as response:
            assert response.status_code == 200
            events = sse_data(response.read().decode())
        payloads = [json.loads(e) for e in events if e != DONE]
        assert DONE not in events, events
        assert [p for p in payloads if p.get("object") == "chat.completion.chunk"], events
        error = payloads[-1]["error"]
        assert error["code"] == "upstream_unavailable", error
        assert "finish_reason" in error["message"], error
        assert not [p for p in payloads if p.get("object") == "unified.chat.metadata"]
        if path == UNIFIED:
            # Turns are stored first in, first out: once a later one is, the cut one
            # would have been too.
            later = tell(client, user, "I also like tea")
            assert [m["id"] for m in listed(client, user)] == [later["metadata"]["memory_id"]]

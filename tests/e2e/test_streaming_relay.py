"""The gateway relays the upstream's stream untouched, forwards every parameter, and
cancels the upstream's generation when the client goes away."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess
from tests.e2e.clients import (
    CHAT_PATH,
    DONE,
    api_client,
    chat_body,
    eventually,
    post_chat,
    sse_chunks,
)

ROUTED_MODEL = "fake-model"  # the fake gateway's GATEWAY_DEFAULT_MODEL


def without_identity(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chunks with what differs between two answers to the same request left out."""
    return [{k: v for k, v in c.items() if k not in ("id", "created")} for c in chunks]


def cancelled_streams(upstream: FakeUpstream) -> int:
    count = upstream.stats()["streams_cancelled"]
    assert isinstance(count, int)
    return count


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_carries_exactly_the_upstreams_chunks(
    fake_gateway: GatewayProcess, fake_upstream: FakeUpstream, include_usage: bool
) -> None:
    body = chat_body(
        "hello", stream=True, max_tokens=5, stream_options={"include_usage": include_usage}
    )
    relayed = post_chat(fake_gateway, json=body)
    direct = httpx.post(
        f"{fake_upstream.url}/chat/completions", json={**body, "model": ROUTED_MODEL}, timeout=30
    )
    assert relayed.status_code == 200
    assert relayed.text.endswith(f"data: {DONE}\n\n")
    chunks = sse_chunks(relayed.text)
    assert without_identity(chunks) == without_identity(sse_chunks(direct.text))
    assert len({c["id"] for c in chunks}) == 1
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == 5
    else:
        assert all("usage" not in c for c in chunks)


def test_client_disconnect_cancels_the_upstream_stream(
    fake_gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    cancelled_before = cancelled_streams(fake_upstream)
    received = []
    body = chat_body("__slow_stream__", stream=True)
    with (
        api_client(fake_gateway) as client,
        client.stream("POST", CHAT_PATH, json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 2:
                break
    assert len(received) == 2
    # The fake streams for 10 s: a stream the gateway did not cancel is not counted.
    cancelled = eventually(
        lambda: cancelled_streams(fake_upstream) > cancelled_before, within_s=10.0
    )
    assert cancelled, fake_upstream.stats()


def test_parameters_are_forwarded_untouched(
    fake_gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    params: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "seed": 42,
        "logprobs": True,
        "response_format": {"type": "json_object"},
        "custom_param": 7,
        "user": "user-1234",
    }
    body = chat_body("__echo__", model="llama-3.3-8b-instruct", **params)
    response = post_chat(fake_gateway, json=body)
    assert response.status_code == 200, response.text
    forwarded = json.loads(response.json()["choices"][0]["message"]["content"])
    # Untouched but for the routed model and the completion bound: without one, the
    # key's cap (the standard tier's 4096) is sent.
    assert forwarded == {**body, "model": ROUTED_MODEL, "max_tokens": 4096}
    assert fake_upstream.stats()["last_request"] == forwarded

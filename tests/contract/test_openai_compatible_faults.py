"""How the OpenAI-compatible adapter turns an upstream's failures into port errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from adapters.inference.openai_compatible import OpenAICompatibleChatModel
from domain.circuit import CircuitBreaker, CircuitState
from domain.errors import (
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from domain.health import Status
from tests.conftest import FakeUpstream, free_port


def ask(content: str, **params: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **params}


@pytest.fixture
def upstream(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(fake_upstream.url, http_client, timeout_s=1.0)


@pytest.mark.parametrize(
    ("directive", "error"),
    [
        ("__status_500__", UpstreamUnavailable),
        ("__status_502__", UpstreamUnavailable),
        ("__status_503__", UpstreamOverloaded),
        ("__status_429__", UpstreamOverloaded),
        ("__status_401__", UpstreamUnavailable),
        ("__garbage__", UpstreamUnavailable),
        ("__drop__", UpstreamUnavailable),
        ("__sleep_3000__", UpstreamTimeout),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_upstream_failures_become_port_errors(
    upstream: OpenAICompatibleChatModel, directive: str, error: type[Exception], streaming: bool
) -> None:
    async def consume() -> None:
        if streaming:
            stream = await upstream.stream(ask(directive, stream=True))
            async for _ in stream:
                pass
        else:
            await upstream.complete(ask(directive))

    with pytest.raises(error):
        await consume()
    assert upstream.in_flight == 0


async def test_server_error_text_is_not_relayed(upstream: OpenAICompatibleChatModel) -> None:
    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.complete(ask("__status_500__"))
    assert "fake upstream error" not in raised.value.message


async def test_client_errors_keep_status_and_message(upstream: OpenAICompatibleChatModel) -> None:
    with pytest.raises(UpstreamRejected) as raised:
        await upstream.complete(ask("__status_400__"))
    assert raised.value.status == 400
    assert "fake upstream error 400" in raised.value.message


async def test_unreachable_upstream(http_client: httpx.AsyncClient) -> None:
    dead = OpenAICompatibleChatModel(f"http://127.0.0.1:{free_port()}", http_client)
    with pytest.raises(UpstreamUnavailable):
        await dead.complete(ask("hi"))
    with pytest.raises(UpstreamUnavailable):
        await dead.stream(ask("hi", stream=True))
    with pytest.raises(UpstreamUnavailable):
        await dead.list_models()
    health = await dead.check()
    assert health.status is Status.UNHEALTHY
    assert health.detail


async def test_forwards_the_body_untouched(upstream: OpenAICompatibleChatModel) -> None:
    sent = ask("__echo__", tools=[{"type": "function"}], seed=7, custom_param={"a": [1]})
    completion = await upstream.complete(sent)
    echoed = json.loads(json.loads(completion.body)["choices"][0]["message"]["content"])
    assert echoed == sent


async def test_sends_the_upstream_key(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    keyed = OpenAICompatibleChatModel(fake_upstream.url, http_client, api_key="up-secret")
    await keyed.complete(ask("hi"))
    assert fake_upstream.stats()["last_headers"]["authorization"] == "Bearer up-secret"


async def test_queue_bound_answers_overloaded_at_once(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    bounded = OpenAICompatibleChatModel(fake_upstream.url, http_client, max_in_flight=1)
    stream = await bounded.stream(ask("__slow_stream__", stream=True))
    try:
        with pytest.raises(UpstreamOverloaded):
            await bounded.complete(ask("hi"))
    finally:
        await stream.aclose()
    assert bounded.in_flight == 0
    assert json.loads((await bounded.complete(ask("hi"))).body)["choices"]


async def test_closing_a_stream_cancels_the_upstream_request(
    fake_upstream: FakeUpstream, upstream: OpenAICompatibleChatModel
) -> None:
    before = fake_upstream.stats()["streams_cancelled"]
    stream = await upstream.stream(ask("__slow_stream__", stream=True))
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(100):
        if fake_upstream.stats()["streams_cancelled"] > before:  # type: ignore[operator]
            break
        await asyncio.sleep(0.05)
    assert fake_upstream.stats()["streams_cancelled"] > before  # type: ignore[operator]


class RecordingTelemetry:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, name: str, target: str, **fields: object) -> None:
        self.events.append((name, target))


def requests_seen(fake_upstream: FakeUpstream) -> int:
    return int(fake_upstream.stats()["requests"])  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("directive", "sent"),
    [("__status_502__", 3), ("__status_503__", 3), ("__status_429__", 3), ("__status_500__", 1)],
)
async def test_only_safe_failures_are_retried(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient, directive: str, sent: int
) -> None:
    telemetry = RecordingTelemetry()
    upstream = OpenAICompatibleChatModel(
        fake_upstream.url, http_client, retries=2, telemetry=telemetry
    )
    before = requests_seen(fake_upstream)
    with pytest.raises((UpstreamUnavailable, UpstreamOverloaded)):
        await upstream.complete(ask(directive))
    assert requests_seen(fake_upstream) - before == sent
    assert [e for e, _ in telemetry.events].count("retry") == sent - 1


async def test_a_refused_connection_is_retried_then_reported(
    http_client: httpx.AsyncClient,
) -> None:
    telemetry = RecordingTelemetry()
    dead = OpenAICompatibleChatModel(
        f"http://127.0.0.1:{free_port()}", http_client, retries=2, telemetry=telemetry
    )
    with pytest.raises(UpstreamUnavailable):
        await dead.complete(ask("hi"))
    assert [e for e, _ in telemetry.events] == ["retry", "retry"]


async def test_the_circuit_opens_refuses_and_closes_after_a_good_probe(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    telemetry = RecordingTelemetry()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=0.3)
    upstream = OpenAICompatibleChatModel(
        fake_upstream.url, http_client, retries=0, breaker=breaker, telemetry=telemetry
    )
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await upstream.complete(ask("__status_500__"))
    assert not upstream.accepting
    before = requests_seen(fake_upstream)
    with pytest.raises(UpstreamOverloaded, match="circuit is open"):
        await upstream.complete(ask("hi"))
    assert requests_seen(fake_upstream) == before, "refused without reaching the upstream"

    await asyncio.sleep(0.35)
    assert upstream.accepting
    assert json.loads((await upstream.complete(ask("hi"))).body)["choices"]
    assert breaker.state is CircuitState.CLOSED
    names = [e for e, _ in telemetry.events]
    assert names == ["circuit_open", "circuit_refused", "circuit_closed"]

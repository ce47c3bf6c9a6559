"""How the OpenAI-compatible adapter turns an upstream's failures into port errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.inference.openai_compatible import OpenAICompatibleChatModel
from domain.circuit import CircuitBreaker, CircuitState
from domain.errors import (
    UnsupportedParameter,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from domain.health import Status
from tests.conftest import FakeUpstream, free_port, start_fake_upstream, stop


def ask(content: str, **params: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **params}


@pytest.fixture(scope="module")
def strict_upstream() -> Iterator[FakeUpstream]:
    """Rejects, by what they hold, the bodies a plain llama.cpp server rejects."""
    upstream = start_fake_upstream("--model", "fake-model", "--strict")
    yield upstream
    stop(upstream.process)


@pytest.fixture
def broken_upstream() -> Iterator[FakeUpstream]:
    """Fails every chat request with a 500 (an outage, not a bad request)."""
    upstream = start_fake_upstream("--model", "fake-model")
    httpx.post(f"http://127.0.0.1:{upstream.port}/_fake/outage", json={"status": 500})
    yield upstream
    stop(upstream.process)


@pytest.fixture
def upstream(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(fake_upstream.url, http_client, timeout_s=1.0)


@pytest.mark.parametrize(
    ("directive", "error"),
    [
        # A 500 that a good request does not get: the request's fault, a 400.
        ("__status_500__", UpstreamRejected),
        ("__status_502__", UpstreamUnavailable),
        ("__status_503__", UpstreamOverloaded),
        ("__status_429__", UpstreamOverloaded),
        ("__status_401__", UpstreamUnavailable),
        ("__garbage__", UpstreamUnavailable),
        ("__drop__", UpstreamUnavailable),
        ("__sleep_3000__", UpstreamTimeout),
        ("__cut_stream__", UpstreamUnavailable),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_upstream_failures_become_port_errors(
    upstream: OpenAICompatibleChatModel, directive: str, error: type[Exception], streaming: bool
) -> None:
    if directive == "__cut_stream__" and not streaming:
        pytest.skip("a cut answer is a streamed one")

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


async def test_server_error_text_is_not_relayed(
    broken_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    upstream = OpenAICompatibleChatModel(broken_upstream.url, http_client, timeout_s=1.0)
    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.complete(ask("hi"))
    assert "outage" not in raised.value.message


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
    [("__status_502__", 3), ("__status_503__", 3), ("__status_429__", 3)],
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
    # Long enough that a loaded machine does not let the cooldown pass before the refusal.
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=2.0)
    upstream = OpenAICompatibleChatModel(
        fake_upstream.url, http_client, retries=0, breaker=breaker, telemetry=telemetry
    )
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await upstream.complete(ask("__status_502__"))
    assert not upstream.accepting
    before = requests_seen(fake_upstream)
    with pytest.raises(UpstreamOverloaded, match="circuit is open"):
        await upstream.complete(ask("hi"))
    assert requests_seen(fake_upstream) == before, "refused without reaching the upstream"

    await asyncio.sleep(2.05)
    assert upstream.accepting
    assert json.loads((await upstream.complete(ask("hi"))).body)["choices"]
    assert breaker.state is CircuitState.CLOSED
    names = [e for e, _ in telemetry.events]
    assert names == ["circuit_open", "circuit_refused", "circuit_closed"]


# --- failure isolation: what one request causes is that request's -----------------------

DEVELOPER = {"role": "developer", "content": "Answer briefly."}
PARTS = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello."}]


def strict_model(
    upstream: FakeUpstream, client: httpx.AsyncClient, **options: Any
) -> tuple[OpenAICompatibleChatModel, CircuitBreaker]:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30)
    model = OpenAICompatibleChatModel(
        upstream.url, client, timeout_s=5.0, retries=0, breaker=breaker, **options
    )
    return model, breaker


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_a_500_only_this_request_gets_is_a_400_and_never_opens_the_circuit(
    strict_upstream: FakeUpstream, http_client: httpx.AsyncClient, streaming: bool
) -> None:
    model, breaker = strict_model(strict_upstream, http_client)
    bad = {"model": "fake-model", "messages": [DEVELOPER, {"role": "user", "content": "hi"}]}
    for _ in range(5):  # more than the circuit's threshold
        send = model.stream({**bad, "stream": True}) if streaming else model.complete(bad)
        with pytest.raises(UpstreamRejected) as raised:
            await send
        assert raised.value.status == 400
    message = raised.value.message
    assert "unexpected role 'developer'" in message
    # The upstream's exception text, without what it must not show.
    for secret in ("Traceback", "sk-upstream", "/opt/upstream", "server.py"):
        assert secret not in message, message
    assert breaker.state is CircuitState.CLOSED
    assert model.accepting
    assert model.in_flight == 0
    assert json.loads((await model.complete(ask("hi"))).body)["choices"]


async def test_the_upstreams_4xx_keeps_its_reason_and_a_422_is_a_400(
    strict_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    model, breaker = strict_model(strict_upstream, http_client)
    with pytest.raises(UpstreamRejected) as raised:
        await model.complete(
            {"model": "fake-model", "messages": [{"role": "user", "content": PARTS}]}
        )
    assert raised.value.status == 400
    assert raised.value.message == "Input should be a valid string (at `messages.0.content`)"
    with pytest.raises(UpstreamRejected) as raised:
        await model.complete(ask("hi", frequency_penalty=5))
    assert (raised.value.status, raised.value.param) == (400, "frequency_penalty")
    assert breaker.state is CircuitState.CLOSED


async def test_an_upstream_failing_every_request_opens_its_circuit(
    broken_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    model, breaker = strict_model(broken_upstream, http_client)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable, match="failed with status 500"):
            await model.complete(ask("hi"))
    assert breaker.state is CircuitState.OPEN
    health = await model.check()
    assert health.status is Status.DEGRADED
    assert health.detail is not None
    assert broken_upstream.url in health.detail
    assert "retried in" in health.detail


# --- plain messages: an upstream that knows only {"role", "content": str} ---------------


async def test_plain_messages_reach_a_strict_upstream_as_it_takes_them(
    strict_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    model, _ = strict_model(strict_upstream, http_client, plain_messages=True)
    sent = {
        "model": "fake-model",
        "messages": [
            DEVELOPER,
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "__echo__"}]},
        ],
    }
    echoed = json.loads(
        json.loads((await model.complete(sent)).body)["choices"][0]["message"]["content"]
    )
    assert echoed["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "__echo__"},
    ]
    stream = await model.stream({**sent, "stream": True})
    assert [chunk async for chunk in stream]


async def test_plain_messages_refuse_a_part_that_is_not_text(
    strict_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    model, _ = strict_model(strict_upstream, http_client, plain_messages=True)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    before = requests_seen(strict_upstream)
    with pytest.raises(UnsupportedParameter) as raised:
        await model.complete(
            {"model": "fake-model", "messages": [{"role": "user", "content": [PARTS[0], image]}]}
        )
    assert raised.value.param == "messages[0].content[1].type"
    assert "'image_url'" in raised.value.message
    assert requests_seen(strict_upstream) == before


# --- turns: one generation at a time, the others wait (bounded) ---------------------------


async def test_requests_wait_their_turn_instead_of_being_refused(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    model = OpenAICompatibleChatModel(
        fake_upstream.url, http_client, concurrency=1, max_in_flight=2, timeout_s=30
    )
    stream = await model.stream(ask("__slow_stream__", stream=True))
    waiting = asyncio.create_task(model.complete(ask("hi")))
    try:
        for _ in range(100):
            if model.waiting:
                break
            await asyncio.sleep(0.01)
        assert model.waiting == 1
        assert not waiting.done()
        with pytest.raises(UpstreamOverloaded):  # the queue is full: refused at once
            await model.complete(ask("hi"))
    finally:
        await stream.aclose()
    assert json.loads((await waiting).body)["choices"]
    assert model.in_flight == 0
    assert model.waiting == 0


async def test_a_half_open_probe_the_upstream_rejects_closes_the_circuit(
    fake_upstream: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    """A 4xx proves the upstream answers: the circuit must not stay half-open, refusing."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=0.2)
    model = OpenAICompatibleChatModel(fake_upstream.url, http_client, retries=0, breaker=breaker)
    with pytest.raises(UpstreamUnavailable):
        await model.complete(ask("__status_502__"))
    await asyncio.sleep(0.25)
    with pytest.raises(UpstreamRejected):
        await model.complete(ask("__status_400__"))
    assert json.loads((await model.complete(ask("hi"))).body)["choices"]
    assert breaker.state is CircuitState.CLOSED

"""ChatCompletions: the client's request, routed, reaches the upstream untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from application.chat_completions import ChatCompletions
from application.model_router import ModelRouter
from domain.chat import SEED_DEFAULT_MODEL, ChatRequest
from domain.errors import ModelNotFound, UpstreamOverloaded, UpstreamUnavailable
from domain.routing import RoutingTable
from tests.fakes.fake_chat_model import FakeChatModel
from tests.fakes.fake_clock import FakeClock

CLIENT_BODY: dict[str, Any] = {
    "model": SEED_DEFAULT_MODEL,
    "messages": [{"role": "user", "content": "hello there"}],
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    "seed": 7,
    "logprobs": True,
    "response_format": {"type": "json_object"},
    "unknown_param": {"nested": [1, 2]},
}


@pytest.fixture
def upstream() -> FakeChatModel:
    return FakeChatModel("up", models=("served-model", "other-model"))


@pytest.fixture
def router(upstream: FakeChatModel) -> ModelRouter:
    table = RoutingTable(default_model="served-model", aliases={SEED_DEFAULT_MODEL: None})
    return ModelRouter([upstream], table, FakeClock())


@pytest.fixture
def chat(router: ModelRouter) -> ChatCompletions:
    return ChatCompletions(router)


async def test_the_client_body_is_forwarded_with_only_the_model_replaced(
    chat: ChatCompletions, upstream: FakeChatModel
) -> None:
    await chat.complete(ChatRequest(CLIENT_BODY))

    assert upstream.requests == [{**CLIENT_BODY, "model": "served-model"}]


async def test_the_client_request_itself_is_left_unchanged(chat: ChatCompletions) -> None:
    body = json.loads(json.dumps(CLIENT_BODY))

    await chat.complete(ChatRequest(body))

    assert body == CLIENT_BODY


async def test_a_request_without_model_goes_to_the_default(
    chat: ChatCompletions, upstream: FakeChatModel
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}

    await chat.complete(ChatRequest(body))

    assert upstream.requests[0]["model"] == "served-model"


async def test_complete_returns_the_upstream_completion(chat: ChatCompletions) -> None:
    body = {"model": "other-model", "messages": [{"role": "user", "content": "ping"}]}

    completion = await chat.complete(ChatRequest(body))

    answer = json.loads(completion.body)
    assert answer["choices"][0]["message"]["content"] == "echo: ping"
    assert completion.model == answer["model"] == "other-model"


async def test_stream_returns_the_upstream_stream(
    chat: ChatCompletions, upstream: FakeChatModel
) -> None:
    body = {**CLIENT_BODY, "stream": True}

    stream = await chat.stream(ChatRequest(body))

    assert stream is upstream.streams[0]
    assert upstream.requests == [{**body, "model": "served-model"}]
    chunks = [json.loads(payload) async for payload in stream]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "echo: hello there"


async def test_a_routing_error_is_raised_before_anything_is_streamed(
    chat: ChatCompletions, upstream: FakeChatModel
) -> None:
    body = {"model": "no-such-model", "messages": [], "stream": True}

    with pytest.raises(ModelNotFound):
        await chat.stream(ChatRequest(body))

    assert upstream.requests == []
    assert upstream.streams == []


async def test_no_upstream_reachable_is_raised_before_anything_is_streamed(
    chat: ChatCompletions, upstream: FakeChatModel
) -> None:
    upstream.failure = UpstreamUnavailable("down")

    with pytest.raises(UpstreamUnavailable):
        await chat.stream(ChatRequest({**CLIENT_BODY, "stream": True}))

    assert upstream.streams == []


async def test_an_upstream_refusal_is_raised_by_stream_itself(
    chat: ChatCompletions, router: ModelRouter, upstream: FakeChatModel
) -> None:
    await router.models()
    upstream.failure = UpstreamOverloaded("busy")

    with pytest.raises(UpstreamOverloaded):
        await chat.stream(ChatRequest({**CLIENT_BODY, "stream": True}))

    assert upstream.streams == []


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, object]]] = []

    def event(self, name: str, target: str, **fields: object) -> None:
        self.seen.append((name, target, fields))


async def test_fails_over_to_the_next_upstream_and_says_so() -> None:
    from domain.errors import UpstreamOverloaded, UpstreamTimeout, UpstreamUnavailable
    from domain.routing import RoutingTable
    from tests.fakes.fake_clock import FakeClock

    down = FakeChatModel(name="down", models=("m",))
    up = FakeChatModel(name="up", models=("m",))
    events = Events()
    router = ModelRouter([down, up], RoutingTable(), FakeClock(), model_map={"m": ["down", "up"]})
    chat = ChatCompletions(router, events)
    body = ChatRequest({"model": "m", "messages": [{"role": "user", "content": "hi"}]})

    down.failure = UpstreamUnavailable("refused")
    assert (await chat.complete(body)).model == "m"
    assert len(up.requests) == 1
    assert events.seen == [("failover", "m", {"from_upstream": "down", "reason": "refused"})]

    down.failure = UpstreamOverloaded("circuit open")
    stream = await chat.stream(ChatRequest({**body.body, "stream": True}))
    assert [p async for p in stream]
    assert len(up.requests) == 2

    # A timeout may mean the request runs there: not sent twice.
    down.failure = UpstreamTimeout("slow")
    with pytest.raises(UpstreamTimeout):
        await chat.complete(body)
    assert len(up.requests) == 2

    up.failure = UpstreamUnavailable("also down")
    down.failure = UpstreamUnavailable("refused")
    with pytest.raises(UpstreamUnavailable, match="also down"):
        await chat.complete(body)

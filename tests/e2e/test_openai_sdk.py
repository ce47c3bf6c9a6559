"""The official ``openai`` SDK against the zero-configuration gateway: the embedded
llama.cpp model (SmolLM2-135M-Instruct) and the seed's dev keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.conftest import GatewayProcess
from tests.e2e.clients import CHAT_PATH, DONE, api_client, chat_body, sse_chunks
from tests.e2e.conftest import STANDARD_KEY
from tests.e2e.openai_errors import assert_openai_error

pytestmark = pytest.mark.llama

EMBEDDED_MODEL = "smollm2-135m-instruct"
SEED_DEFAULT_MODEL = "llama-3.3-8b-instruct"
MAX_TOKENS = 8
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
# The embedded model generates one answer at a time on the CPU: be patient.
TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def client(embedded_gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{embedded_gateway.url}/v1", api_key=STANDARD_KEY, timeout=TIMEOUT_S
    ) as sdk:
        yield sdk


def assert_completion(completion: ChatCompletion) -> None:
    assert completion.id
    assert completion.created > 0
    assert completion.model == EMBEDDED_MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert 1 <= usage.completion_tokens <= MAX_TOKENS
    assert usage.prompt_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("model", [EMBEDDED_MODEL, SEED_DEFAULT_MODEL])
def test_sync_client_completes(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS
    )
    assert_completion(completion)


def test_request_without_model_uses_the_embedded_model(
    embedded_gateway: GatewayProcess,
) -> None:
    # The SDK insists on a model; the seed's clients did not send one.
    with api_client(embedded_gateway, timeout=TIMEOUT_S) as http:
        response = http.post(CHAT_PATH, json=chat_body("Say hello.", max_tokens=MAX_TOKENS))
    assert response.status_code == 200, response.text
    assert_completion(ChatCompletion.model_validate(response.json()))


async def test_async_client_completes(embedded_gateway: GatewayProcess) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{embedded_gateway.url}/v1", api_key=STANDARD_KEY, timeout=TIMEOUT_S
    ) as sdk:
        completion = await sdk.chat.completions.create(
            model=EMBEDDED_MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS
        )
    assert_completion(completion)


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=EMBEDDED_MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert len(finishes) == 1
    assert finishes[0] in ("stop", "length")
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens >= 1
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def test_raw_stream_is_unbuffered_sse(embedded_gateway: GatewayProcess) -> None:
    body = chat_body("Say hello.", max_tokens=MAX_TOKENS, stream=True)
    with (
        api_client(embedded_gateway, timeout=TIMEOUT_S) as http,
        http.stream("POST", CHAT_PATH, json=body) as response,
    ):
        text = response.read().decode()
    assert response.status_code == 200, text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert text.endswith(f"data: {DONE}\n\n")
    assert all(c["object"] == "chat.completion.chunk" for c in sse_chunks(text))


def test_models_list_has_the_embedded_model(client: openai.OpenAI) -> None:
    assert EMBEDDED_MODEL in {m.id for m in client.models.list()}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"n": 2}, "n"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            "tools",
        ),
    ],
    ids=["n", "tools"],
)
def test_unsupported_parameter_is_400_naming_it(
    client: openai.OpenAI, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=EMBEDDED_MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, **params
        )
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["param"] == param
    assert_openai_error(raised.value.response, 400, param=param)


def test_health_reports_the_embedded_model(embedded_gateway: GatewayProcess) -> None:
    response = httpx.get(f"{embedded_gateway.url}/health", timeout=TIMEOUT_S)
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "healthy"
    model = health["services"]["embedded_model"]
    assert model["status"] == "healthy"
    assert isinstance(model["latency_ms"], int | float)
    assert not isinstance(model["latency_ms"], bool)

"""The clients' protocols on the zero-configuration gateway: the embedded llama.cpp
model (its server's own ``/v1/completions``, and Messages and Responses translated onto
its chat completions), through the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.conftest import STANDARD_KEY

pytestmark = pytest.mark.llama

EMBEDDED_MODEL = "smollm2-135m-instruct"
TIMEOUT_S = 120.0  # one answer at a time on the CPU


@pytest.fixture(scope="module")
def oai(embedded_gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{embedded_gateway.url}/v1", api_key=STANDARD_KEY, timeout=TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture(scope="module")
def claude(embedded_gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=embedded_gateway.url, api_key=STANDARD_KEY, timeout=TIMEOUT_S
    ) as client:
        yield client


def test_legacy_completions_streamed_and_not(oai: openai.OpenAI) -> None:
    completion = oai.completions.create(
        model=EMBEDDED_MODEL, prompt="The capital of France is", max_tokens=4
    )
    assert completion.object == "text_completion"
    assert completion.choices[0].text
    assert completion.choices[0].finish_reason in ("stop", "length")
    chunks = list(
        oai.completions.create(model=EMBEDDED_MODEL, prompt="One, two,", max_tokens=4, stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_messages_create_stream_and_count(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=EMBEDDED_MODEL, max_tokens=6, system="You are terse.",
        messages=[{"role": "user", "content": "Say hello."}],
    )  # fmt: skip
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 1 <= message.usage.output_tokens <= 6
    assert message.usage.input_tokens >= 1
    with claude.messages.stream(
        model=EMBEDDED_MODEL, max_tokens=6, messages=[{"role": "user", "content": "Say hi."}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert 1 <= final.usage.output_tokens <= 6
    counted = claude.messages.count_tokens(
        model=EMBEDDED_MODEL, messages=[{"role": "user", "content": "Say hello."}]
    )
    assert counted.input_tokens >= 1


def test_responses_create_and_stream(oai: openai.OpenAI) -> None:
    response = oai.responses.create(
        model=EMBEDDED_MODEL, input="Say hello.", instructions="You are terse.",
        max_output_tokens=6,
    )  # fmt: skip
    assert response.output_text
    assert response.status in ("completed", "incomplete")
    assert response.usage is not None
    assert 1 <= response.usage.output_tokens <= 6
    # A raw stream: the SDK's stream helper wants `response.completed`, and an answer cut
    # by max_output_tokens ends with `response.incomplete`, as OpenAI's does.
    events = list(
        oai.responses.create(
            model=EMBEDDED_MODEL, input="And goodbye?", previous_response_id=response.id,
            max_output_tokens=6, stream=True,
        )
    )  # fmt: skip
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] in ("response.completed", "response.incomplete")
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas
    assert events[-1].response.output_text == "".join(deltas)  # type: ignore[union-attr]

"""The clients users bring, through their official SDKs, against a gateway whose
upstream is the scripted fake (tool calls, finish reasons, legacy completions):
``openai`` (completions, responses), ``anthropic`` (messages, stream, count_tokens).
The app is served in process, the SDKs driving it through its transport; their checks
against a real port are test_client_protocols_embedded's (and test_openai_sdk's)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import FakeUpstream, start_fake_upstream, stop
from tests.e2e.clients import api_client, last_upstream_request, sse_chunks
from tests.e2e.conftest import ADMIN_KEY, STANDARD_KEY, shared_fake_env
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import (
    InProcessGateway,
    anthropic_client,
    in_process_gateway,
    in_process_pair,
    openai_client,
)

MODEL = "fake-model"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"name": "weather", "description": "The weather in a city", "input_schema": CITY}
FUNCTION = {"type": "function", "name": "weather", "description": "The weather in a city",
            "parameters": CITY}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    env = shared_fake_env(fake_upstream)
    with in_process_gateway(env, tmp_path_factory.mktemp("protocols")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def oai(gateway: InProcessGateway) -> Iterator[openai.OpenAI]:
    with openai_client(gateway, api_key=STANDARD_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def claude(gateway: InProcessGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(gateway, api_key=STANDARD_KEY) as client:
        yield client


def anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error"}, body
    assert body["type"] == "error"
    assert body["error"]["type"] == kind, body
    message: str = body["error"]["message"]
    assert message
    assert "Traceback" not in message
    return message


# --- /v1/completions ------------------------------------------------------------------


def test_completions_pass_through(oai: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    completion = oai.completions.create(model=MODEL, prompt="Once upon", max_tokens=3)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "tok0 tok1 tok2"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    sent = last_upstream_request(fake_upstream)
    assert sent["prompt"] == "Once upon"
    assert sent["max_tokens"] == 3


def test_completions_stream(oai: openai.OpenAI) -> None:
    chunks = list(oai.completions.create(model=MODEL, prompt=["Once"], max_tokens=2, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "tok0 tok1 "
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completions_get_the_keys_cap_and_its_refusals(
    gateway: InProcessGateway, fake_upstream: FakeUpstream
) -> None:
    url = "/v1/completions"
    with api_client(gateway) as client, api_client(gateway, None) as nobody:
        client.post(url, json={"model": MODEL, "prompt": "x"}).raise_for_status()
        # No max_tokens: the standard tier's cap is sent, as on chat completions.
        assert last_upstream_request(fake_upstream)["max_tokens"] == 4096
        over = client.post(url, json={"model": MODEL, "prompt": "x", "max_tokens": 100_000})
        assert_openai_error(over, 400, param="max_tokens")
        wrong = client.post(url, json={"model": MODEL, "prompt": 3})
        assert_openai_error(wrong, 400, param="prompt")
        missing = client.post(url, json={"model": MODEL})
        assert_openai_error(missing, 400, param="prompt")
        unknown = client.post(url, json={"model": "nope", "prompt": "x"})
        assert_openai_error(unknown, 404, param="model")
        anonymous = nobody.post(url, json={"model": MODEL, "prompt": "x"})
        assert_openai_error(anonymous, 401)


def test_a_managed_keys_allowed_models_hold_on_every_route(
    gateway: InProcessGateway, fake_upstream: FakeUpstream
) -> None:
    with api_client(gateway, ADMIN_KEY) as admin:
        created = admin.post(
            "/v1/keys",
            json={"name": f"only-{uuid.uuid4().hex[:6]}", "allowed_models": ["fake-model"],
                  "max_tokens": 20},
        )  # fmt: skip
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    with api_client(gateway, secret) as client:
        assert_openai_error(
            client.post("/v1/completions", json={"model": "fake-model-2", "prompt": "x"}), 403
        )
        assert_openai_error(
            client.post("/v1/responses", json={"model": "fake-model-2", "input": "x"}), 403
        )
        anthropic_error(
            client.post("/v1/messages", json={"model": "fake-model-2", "max_tokens": 5,
                                              "messages": [{"role": "user", "content": "x"}]}),
            403, "permission_error",
        )  # fmt: skip
        one = [{"role": "user", "content": "x"}]
        anthropic_error(
            client.post("/v1/messages/count_tokens", json={"model": "fake-model-2",
                                                           "messages": one}),
            403, "permission_error",
        )  # fmt: skip
        # Anthropic's max_tokens is required (clients send their model's most): the
        # key's cap lowers it.
        over = client.post("/v1/messages", json={"model": MODEL, "max_tokens": 21, "messages": one})
        assert over.status_code == 200, over.text
        assert last_upstream_request(fake_upstream)["max_tokens"] == 20
        assert_openai_error(
            client.post("/v1/responses", json={"model": MODEL, "input": "x",
                                               "max_output_tokens": 21}),
            400, param="max_tokens",
        )  # fmt: skip
        fine = client.post("/v1/responses", json={"model": MODEL, "input": "x"})
        assert fine.status_code == 200, fine.text
        assert fine.json()["usage"]["output_tokens"] == 8


def test_an_upstream_without_completions_is_a_clear_400(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    upstream = start_fake_upstream("--chat-only")
    try:
        with (
            in_process_gateway(
                {"MAX_SERVE_URL": upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model"},
                tmp_path_factory.mktemp("chat-only"),
            ) as gateway,
            api_client(gateway) as client,
        ):
            for stream in (False, True):
                refused = client.post(
                    "/v1/completions", json={"model": MODEL, "prompt": "x", "stream": stream}
                )
                error = assert_openai_error(
                    refused, 400, param="model", code="completions_unsupported"
                )
                assert "/v1/completions" in error["message"]
            chat = client.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            )
            assert chat.status_code == 200
    finally:
        stop(upstream.process)


# --- /v1/messages ---------------------------------------------------------------------


def test_messages_create(claude: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    message = claude.messages.create(
        model=MODEL, max_tokens=3, system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        stop_sequences=["END"], extra_body={"temperature": 0.5},
    )  # fmt: skip
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "tok0 tok1 tok2"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    sent = last_upstream_request(fake_upstream)
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hello"}]  # fmt: skip
    assert sent["stop"] == ["END"]
    assert sent["max_tokens"] == 3
    assert sent["temperature"] == 0.5


def test_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 "
    assert len(texts) == 8  # relayed chunk by chunk, not bunched
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8
    assert final.usage.input_tokens >= 1


def test_messages_event_sequence_on_the_wire(gateway: InProcessGateway) -> None:
    with api_client(gateway, None) as client:
        response = client.post(
            "/v1/messages", headers={"x-api-key": STANDARD_KEY},
            json={"model": MODEL, "max_tokens": 2, "stream": True,
                  "messages": [{"role": "user", "content": "Hello"}]},
        )  # fmt: skip
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [line.removeprefix("event: ") for line in response.text.split("\n")
             if line.startswith("event: ")]  # fmt: skip
    assert names == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]  # fmt: skip
    payloads = sse_chunks(response.text)
    assert [p["type"] for p in payloads] == names
    assert payloads[5]["delta"]["stop_reason"] == "max_tokens"
    assert payloads[5]["usage"]["output_tokens"] == 2


def test_messages_tool_use_round_trip(
    claude: anthropic.Anthropic, fake_upstream: FakeUpstream
) -> None:
    ask: list[Any] = [{"role": "user", "content": "__tool_call__ weather in Paris?"}]
    first = claude.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER], tool_choice={"type": "auto"}, messages=ask
    )  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert call.type == "tool_use"
    assert call.name == "weather"
    assert call.input == {"city": "Paris"}
    sent = last_upstream_request(fake_upstream)
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == "auto"
    answer = claude.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER],  # type: ignore[list-item]
        messages=[*ask, {"role": "assistant", "content": first.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                "content": "sunny, 21 C"}]}],
    )  # fmt: skip
    assert answer.content[0].text == "tool result: sunny, 21 C"  # type: ignore[union-attr]
    assert answer.stop_reason == "end_turn"
    sent = last_upstream_request(fake_upstream)
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id,
                                   "content": "sunny, 21 C"}  # fmt: skip


def test_messages_streamed_tool_use(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL, max_tokens=100, tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "__tool_call__"}],
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [call] = final.content
    assert call.type == "tool_use"
    assert call.input == {"city": "Paris"}


def test_count_tokens(claude: anthropic.Anthropic) -> None:
    short = claude.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}]
    )
    long = claude.messages.count_tokens(
        model=MODEL, system="You are a helpful assistant.", tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Hello " * 200}],
    )  # fmt: skip
    assert 1 <= short.input_tokens < long.input_tokens


def test_messages_key_as_bearer_and_errors_in_anthropics_shape(
    gateway: InProcessGateway,
) -> None:
    with anthropic_client(gateway, auth_token=STANDARD_KEY) as client:
        message = client.messages.create(
            model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Hi"}]
        )
        assert message.content[0].text == "tok0"  # type: ignore[union-attr]
    bad = anthropic_client(gateway, api_key="sk-wrong")
    with bad, pytest.raises(anthropic.AuthenticationError) as refused:
        bad.messages.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with api_client(gateway, None) as nobody:
        anonymous = nobody.post("/v1/messages", json={"model": MODEL})
    anthropic_error(anonymous, 401, "authentication_error")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"bogus": 1}, "bogus"),
        ({"max_tokens": "8"}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        # A system message between turns (Claude Code's) is text only.
        ({"messages": [{"role": "system", "content": [{"type": "image", "source": {}}]}]},
         "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": "x", "extra": 1}]}, "extra"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
         "messages[0].content[0]"),
        ({"tools": [{"name": "", "input_schema": {}}]}, "tools[0].name"),
        ({"model": None}, "model"),
    ],
)  # fmt: skip
def test_hostile_messages_are_refused_naming_the_field(
    gateway: InProcessGateway, body: dict[str, Any], named: str
) -> None:
    request = {"model": MODEL, "max_tokens": 8,
               "messages": [{"role": "user", "content": "x"}], **body}  # fmt: skip
    with api_client(gateway) as client:
        response = client.post("/v1/messages", json=request)
    assert named in anthropic_error(response, 400, "invalid_request_error")


def test_an_unknown_model_is_anthropics_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as refused:
        claude.messages.create(model="claude-nope", max_tokens=1,
                               messages=[{"role": "user", "content": "x"}])  # fmt: skip
    assert refused.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_an_upstream_failure_mid_request_is_anthropics_error(claude: anthropic.Anthropic) -> None:
    failing = [{"role": "user", "content": "__status_503__"}]
    with pytest.raises(anthropic.APIStatusError) as refused:
        claude.messages.create(model=MODEL, max_tokens=5, messages=failing)  # type: ignore[arg-type]
    assert refused.value.status_code == 503
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert refused.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


# --- /v1/responses --------------------------------------------------------------------


def test_responses_create(oai: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    response = oai.responses.create(
        model=MODEL, input="Hello", instructions="Be brief.", max_output_tokens=3,
        temperature=0.3, top_p=0.9,
    )  # fmt: skip
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.output_text == "tok0 tok1 tok2"
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    sent = last_upstream_request(fake_upstream)
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hello"}]  # fmt: skip
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (3, 0.3, 0.9)


def test_responses_stream(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model=MODEL, input="Hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]  # fmt: skip
    assert kinds.count("response.output_text.delta") == 8
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip
    assert final.status == "completed"
    assert final.output_text == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 "
    assert final.usage is not None
    assert final.usage.output_tokens == 8


def test_responses_raw_stream_ends_with_the_completed_response(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model=MODEL, input="Hello", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.startswith("tok0")  # type: ignore[union-attr]


def test_responses_function_call_round_trip(
    oai: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    first = oai.responses.create(model=MODEL, input="__tool_call__ Paris?", tools=[FUNCTION])  # type: ignore[list-item]
    [call] = first.output
    assert call.type == "function_call"
    assert call.name == "weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    # Continued by id: the stored conversation is sent before the output.
    second = oai.responses.create(
        model=MODEL, previous_response_id=first.id, tools=[FUNCTION],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )  # fmt: skip
    assert second.output_text == "tool result: sunny"
    assert second.previous_response_id == first.id
    sent = last_upstream_request(fake_upstream)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.call_id
    # Or sent back in full (store: false keeps nothing).
    third = oai.responses.create(
        model=MODEL, store=False, tools=[FUNCTION],  # type: ignore[list-item]
        input=[{"role": "user", "content": "Paris?"},
               {"type": "function_call", "call_id": "c1", "name": "weather",
                "arguments": '{"city": "Paris"}'},
               {"type": "function_call_output", "call_id": "c1", "output": "rain"}],
    )  # fmt: skip
    assert third.output_text == "tool result: rain"
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(third.id)


def test_responses_streamed_function_call(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model=MODEL, input="__tool_call__", tools=[FUNCTION]) as stream:  # type: ignore[list-item]
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    [call] = final.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Paris"}


def test_stored_responses_continue_read_and_delete(
    oai: openai.OpenAI, gateway: InProcessGateway, fake_upstream: FakeUpstream
) -> None:
    first = oai.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=2)
    second = oai.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id, instructions="I"
    )
    sent = last_upstream_request(fake_upstream)
    assert [m["content"] for m in sent["messages"]] == [
        "I", "My name is Ada.", "tok0 tok1", "What is my name?"]  # fmt: skip
    assert oai.responses.retrieve(second.id).output_text == second.output_text
    # Another tenant's key does not see it.
    with api_client(gateway, ADMIN_KEY) as admin:
        created = admin.post(
            "/v1/keys", json={"name": "other tenant", "tenant": f"t{uuid.uuid4().hex[:6]}"}
        )
    with api_client(gateway, created.json()["key"]) as other:
        seen = other.get(f"/v1/responses/{second.id}")
        assert_openai_error(seen, 404, param="response_id")
        continued = other.post(
            "/v1/responses",
            json={"model": MODEL, "input": "x", "previous_response_id": second.id},
        )
        assert_openai_error(continued, 404, param="previous_response_id")
    oai.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(second.id)
    with api_client(gateway) as client:
        gone = client.delete(f"/v1/responses/{second.id}")
    assert_openai_error(gone, 404)


def test_responses_text_format(oai: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    oai.responses.create(model=MODEL, input="x", text={"format": {"type": "json_object"}})
    assert last_upstream_request(fake_upstream)["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    oai.responses.create(
        model=MODEL, input="x",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema,
                         "strict": True}},
    )  # fmt: skip
    assert last_upstream_request(fake_upstream)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema,
                                               "strict": True}}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"bogus": 1}, None),
        ({"input": 5}, "input"),
        ({"max_output_tokens": "8"}, "max_output_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0]"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "parameters": {}}]}, "tools[0].name"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"previous_response_id": "resp_unknown"}, "previous_response_id"),
    ],
)  # fmt: skip
def test_hostile_responses_requests_are_refused_naming_the_field(
    gateway: InProcessGateway, body: dict[str, Any], param: str | None
) -> None:
    with api_client(gateway) as client:
        response = client.post("/v1/responses", json={"model": MODEL, "input": "x", **body})
    status = 404 if param == "previous_response_id" else 400
    error = assert_openai_error(response, status)
    if param is not None:
        assert error["param"] == param, error
    else:
        assert "bogus" in error["message"]


# --- failures once streaming, and stored responses shared through Redis ---------------


def test_a_stream_failing_midway_ends_with_anthropics_error_event(
    gateway: InProcessGateway,
) -> None:
    # The upstream ends the answer without a finish_reason: cut, not finished.
    with api_client(gateway, None) as client:
        response = client.post(
            "/v1/messages", headers={"x-api-key": STANDARD_KEY},
            json={"model": MODEL, "max_tokens": 50, "stream": True,
                  "messages": [{"role": "user", "content": "__cut_stream__"}]},
        )  # fmt: skip
    assert response.status_code == 200
    payloads = sse_chunks(response.text)
    assert payloads[0]["type"] == "message_start"
    assert payloads[-1]["type"] == "error"
    assert payloads[-1]["error"]["type"] == "api_error"
    assert "finish" in payloads[-1]["error"]["message"]
    assert "message_stop" not in [p["type"] for p in payloads]


def test_a_stream_failing_midway_ends_with_response_failed(
    gateway: InProcessGateway,
) -> None:
    with api_client(gateway) as client:
        response = client.post(
            "/v1/responses", json={"model": MODEL, "input": "__cut_stream__", "stream": True}
        )
        assert response.status_code == 200
        payloads = sse_chunks(response.text)
        assert payloads[0]["type"] == "response.created"
        assert [p["type"] for p in payloads[-2:]] == ["error", "response.failed"]
        assert payloads[-1]["response"]["status"] == "failed"
        assert "response.completed" not in [p["type"] for p in payloads]
        # A failed answer is not stored.
        stored = client.get(f"/v1/responses/{payloads[0]['response']['id']}")
    assert_openai_error(stored, 404)


@pytest.fixture(scope="module")
def redis_pair(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[InProcessGateway, InProcessGateway]]:
    from tests.contract.memory_fixtures import start_redis

    redis = start_redis(tmp_path_factory.mktemp("redis-responses"))
    env = {"MAX_SERVE_URL": fake_upstream.url, "GATEWAY_DEFAULT_MODEL": MODEL,
           "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0", "QDRANT_URL": ""}  # fmt: skip
    try:
        with in_process_pair(env, tmp_path_factory, "responses") as pair:
            yield pair
    finally:
        redis.kill()


@pytest.mark.redis
def test_a_response_stored_by_one_instance_is_continued_on_another(
    redis_pair: tuple[InProcessGateway, InProcessGateway], fake_upstream: FakeUpstream
) -> None:
    first, second = redis_pair
    with (
        openai_client(first, api_key=STANDARD_KEY) as a,
        openai_client(second, api_key=STANDARD_KEY) as b,
    ):
        stored = a.responses.create(model=MODEL, input="Remember: blue.", max_output_tokens=2)
        assert b.responses.retrieve(stored.id).output_text == "tok0 tok1"
        b.responses.create(model=MODEL, input="Which colour?", previous_response_id=stored.id)
        sent = last_upstream_request(fake_upstream)
        assert [m["content"] for m in sent["messages"]] == [
            "Remember: blue.", "tok0 tok1", "Which colour?"]  # fmt: skip
        b.responses.delete(stored.id)
        with pytest.raises(openai.NotFoundError):
            a.responses.retrieve(stored.id)


@pytest.mark.redis
def test_with_redis_down_answers_still_come_unstored(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.contract.memory_fixtures import start_redis

    redis = start_redis(tmp_path_factory.mktemp("redis-down"))
    env = {"MAX_SERVE_URL": fake_upstream.url, "GATEWAY_DEFAULT_MODEL": MODEL,
           "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0", "QDRANT_URL": ""}  # fmt: skip
    try:
        with (
            in_process_gateway(env, tmp_path_factory.mktemp("redis-down-gw")) as gateway,
            openai_client(gateway, api_key=STANDARD_KEY) as client,
        ):
            kept = client.responses.create(model=MODEL, input="x", max_output_tokens=1)
            assert client.responses.retrieve(kept.id).id == kept.id
            redis.kill()
            answered = client.responses.create(model=MODEL, input="x", max_output_tokens=1)
            assert answered.output_text == "tok0"
            with client.responses.stream(model=MODEL, input="x") as stream:
                assert stream.get_final_response().status == "completed"
            with api_client(gateway) as plain:
                refused = plain.get(f"/v1/responses/{kept.id}")
            assert_openai_error(refused, 503)
            assert "retry-after" in refused.headers
    finally:
        redis.kill()

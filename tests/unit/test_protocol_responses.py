"""OpenAI's Responses API onto chat completions: every request and input item shape
in, every completion and chunk shape out (``application.protocols.responses``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from application.protocols import responses
from domain.errors import InvalidRequest, UnsupportedParameter

TOOL = {"type": "function", "name": "weather", "description": "The weather",
        "parameters": {"type": "object"}}  # fmt: skip


def ask(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "hi", **fields}


def test_a_string_input_with_instructions_becomes_a_chat_request() -> None:
    body = responses.chat_request(
        ask(instructions="Be brief.", max_output_tokens=9, temperature=0.2, top_p=0.5, user="u")
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_tokens": 9,
        "temperature": 0.2,
        "top_p": 0.5,
        "user": "u",
    }


def test_message_items_with_text_parts() -> None:
    items = [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"},
                                                        {"type": "input_text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "c", "annotations": []}]},
    ]  # fmt: skip
    assert responses.input_messages(items) == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "c"},
    ]


def test_an_image_part_is_refused_naming_it() -> None:
    items = [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]
    with pytest.raises(UnsupportedParameter) as refused:
        responses.input_messages(items)
    assert refused.value.param == "input[0].content[0]"


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"role": "robot", "content": "x"}, "input[0].role"),
        ({"type": "item_reference", "id": "x"}, "input[0].type"),
        ({"type": "function_call", "name": "f"}, "input[0]"),
        ({"type": "function_call_output", "output": "x"}, "input[0].call_id"),
        ({"type": "function_call", "call_id": "c", "name": "f", "arguments": {}},
         "input[0].arguments"),
    ],
)  # fmt: skip
def test_malformed_items_are_refused_naming_the_field(item: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        responses.input_messages([item])
    assert refused.value.param == param


def test_function_calls_and_their_outputs_round_trip() -> None:
    items = [
        {"role": "user", "content": "weather in Oslo and Rome?"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"c":"Oslo"}'},
        {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": '{"c":"Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": "rain"},
        {"type": "reasoning", "summary": []},
    ]
    messages = responses.input_messages(items)
    assert messages[1]["role"] == "assistant"
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["c1", "c2"]
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_function_tools_and_tool_choice() -> None:
    body = responses.chat_request(
        ask(tools=[TOOL], tool_choice={"type": "function", "name": "weather"})
    )
    function = {"name": "weather", "parameters": {"type": "object"}, "description": "The weather"}
    assert body["tools"] == [{"type": "function", "function": function}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert responses.chat_request(ask(tools=[TOOL], tool_choice="required"))["tool_choice"] == (
        "required"
    )


def test_a_tool_other_than_a_function_is_refused() -> None:
    with pytest.raises(UnsupportedParameter) as refused:
        responses.chat_request(ask(tools=[TOOL, {"type": "web_search"}]))
    assert refused.value.param == "tools[1].type"


def test_a_function_tool_needs_a_name() -> None:
    with pytest.raises(InvalidRequest) as refused:
        responses.chat_request(ask(tools=[{"type": "function", "parameters": {}}]))
    assert refused.value.param == "tools[0].name"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "text"}}, None),
        ({"format": {"type": "json_object"}}, {"type": "json_object"}),
        (
            {"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"},
                        "strict": True}},
            {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"},
                                                    "strict": True}},
        ),
    ],
)  # fmt: skip
def test_text_format_becomes_response_format(text: dict[str, Any], expected: Any) -> None:
    assert responses.chat_request(ask(text=text)).get("response_format") == expected


@pytest.mark.parametrize("form", [{"type": "json_schema", "schema": {}}, {"type": "yaml"}])
def test_a_bad_text_format_is_refused(form: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        responses.chat_request(ask(text={"format": form}))
    assert (refused.value.param or "").startswith("text.format")


def test_history_comes_after_the_instructions_and_before_the_input() -> None:
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    body = responses.chat_request(ask(instructions="I", stream=True), history)
    assert [m["content"] for m in body["messages"]] == ["I", "a", "b", "hi"]
    assert body["stream_options"] == {"include_usage": True}


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def test_a_completion_becomes_a_response() -> None:
    answer = responses.response(
        ask(instructions="I"), completion({"content": "Hi!"}, "stop"), "resp_1", "m", 1700
    )
    assert answer["id"] == "resp_1"
    assert answer["object"] == "response"
    assert answer["status"] == "completed"
    assert answer["model"] == "upstream-model"
    assert answer["instructions"] == "I"
    [item] = answer["output"]
    assert item["type"] == "message"
    assert item["content"][0]["text"] == "Hi!"
    assert answer["usage"]["input_tokens"] == 7
    assert answer["usage"]["output_tokens"] == 3
    assert answer["usage"]["total_tokens"] == 10


def test_a_cut_completion_is_incomplete() -> None:
    answer = responses.response(ask(), completion({"content": "Hi"}, "length"), "r", "m", 1)
    assert answer["status"] == "incomplete"
    assert answer["incomplete_details"] == {"reason": "max_output_tokens"}


def test_tool_calls_become_function_call_items_and_continue_the_conversation() -> None:
    call = {"id": "call_1", "function": {"name": "weather", "arguments": '{"c":"Oslo"}'}}
    answer = responses.response(
        ask(), completion({"content": None, "tool_calls": [call]}, "tool_calls"), "r", "m", 1
    )
    [item] = answer["output"]
    assert item["type"] == "function_call"
    assert item["call_id"] == "call_1"
    assert item["name"] == "weather"
    assert item["arguments"] == '{"c":"Oslo"}'
    kept = responses.conversation([], ask(), answer["output"])
    assert kept == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"c":"Oslo"}'}}]},
    ]  # fmt: skip


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"choices": choices, **extra}


def run(chunks: list[Any]) -> list[responses.Event]:
    stream = responses.ResponseStream(responses.envelope(ask(), "resp_1", "m", 1))
    events = stream.start()
    for payload in chunks:
        events += stream.feed(payload)
    return events + stream.finish()


def test_a_text_stream_is_the_responses_event_sequence() -> None:
    events = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        ]
    )
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[6]["text"] == "Hello"
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "Hello"
    assert done["usage"]["total_tokens"] == 7
    item_ids = {e.get("item_id") for e in events if "item_id" in e}
    assert item_ids == {done["output"][0]["id"]}


def test_a_streamed_tool_call_is_a_function_call_item() -> None:
    head = {"index": 0, "id": "call_1", "function": {"name": "weather", "arguments": ""}}
    events = run(
        [
            chunk({"content": "Looking."}),
            chunk({"tool_calls": [head]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"c":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds[-6:] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert events[-6]["output_index"] == 1
    assert json.loads(events[-3]["arguments"]) == {"c": "Oslo"}
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[1]["call_id"] == "call_1"


def test_a_stream_cut_by_max_output_tokens_ends_incomplete() -> None:
    events = run([chunk({"content": "x"}), chunk({}, "length")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

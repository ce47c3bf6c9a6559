"""Anthropic's Messages API onto chat completions: every request shape in, every
completion and chunk shape out (``application.protocols.anthropic``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from application.protocols import anthropic
from domain.errors import InvalidRequest, UnsupportedParameter

TOOLS = [{"name": "weather", "description": "The weather", "input_schema": {"type": "object"}}]


def ask(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}],
            **fields}  # fmt: skip


def test_a_plain_request_becomes_a_chat_request() -> None:
    body = anthropic.chat_request(ask(temperature=0.5, top_p=0.9, stop_sequences=["END"]))
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
    }


@pytest.mark.parametrize(
    "system", ["Be brief.", [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}]]
)
def test_the_system_prompt_string_or_blocks_comes_first(system: Any) -> None:
    messages = anthropic.chat_request(ask(system=system))["messages"]
    assert messages[0]["role"] == "system"
    assert messages[0]["content"] in ("Be brief.", "Be\nbrief.")
    assert messages[1] == {"role": "user", "content": "hi"}


def test_text_blocks_are_joined() -> None:
    content = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    messages = anthropic.chat_messages(ask(messages=[{"role": "user", "content": content}]))
    assert messages == [{"role": "user", "content": "one\ntwo"}]


@pytest.mark.parametrize("kind", ["image", "document"])
def test_an_image_or_document_is_refused_naming_the_block(kind: str) -> None:
    content = [{"type": "text", "text": "see"}, {"type": kind, "source": {}}]
    with pytest.raises(UnsupportedParameter) as refused:
        anthropic.chat_request(ask(messages=[{"role": "user", "content": content}]))
    assert refused.value.param == "messages[0].content[1]"


def test_an_unknown_block_type_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        anthropic.chat_request(ask(messages=[{"role": "user", "content": [{"type": "audio"}]}]))
    assert refused.value.param == "messages[0].content[0].type"


def test_a_tool_use_round_trip_becomes_tool_calls_and_a_tool_message() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "sunny"}]},
            {"type": "text", "text": "and tomorrow?"},
        ]},
    ]  # fmt: skip
    body = anthropic.chat_request(ask(messages=messages, tools=TOOLS))
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}],
    }  # fmt: skip
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert body["messages"][3] == {"role": "user", "content": "and tomorrow?"}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather",
                "parameters": {"type": "object"},
            },
        }
    ]


def test_a_failed_tool_result_says_so() -> None:
    content = [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}]
    messages = anthropic.chat_messages(ask(messages=[{"role": "user", "content": content}]))
    assert messages == [{"role": "tool", "tool_call_id": "t", "content": "Error: boom"}]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "weather"},
            {"type": "function", "function": {"name": "weather"}},
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    assert anthropic.chat_request(ask(tools=TOOLS, tool_choice=choice))["tool_choice"] == expected


def test_tool_choice_of_a_tool_needs_its_name() -> None:
    with pytest.raises(InvalidRequest) as refused:
        anthropic.chat_request(ask(tools=TOOLS, tool_choice={"type": "tool"}))
    assert refused.value.param == "tool_choice.name"


def test_streaming_asks_for_usage_and_metadata_user_is_forwarded() -> None:
    body = anthropic.chat_request(ask(stream=True, metadata={"user_id": "u1"}))
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["user"] == "u1"


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
     ("content_filter", "refusal"), (None, "end_turn")],
)  # fmt: skip
def test_a_completion_becomes_a_message(finish: str | None, stop_reason: str) -> None:
    answer = anthropic.message(completion({"role": "assistant", "content": "Hi!"}, finish), "m")  # type: ignore[arg-type]
    assert answer["type"] == "message"
    assert answer["role"] == "assistant"
    assert answer["id"].startswith("msg_")
    assert answer["model"] == "upstream-model"
    assert answer["content"] == [{"type": "text", "text": "Hi!"}]
    assert answer["stop_reason"] == stop_reason
    assert answer["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_tool_calls_become_tool_use_blocks() -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}  # fmt: skip
    answer = anthropic.message(
        completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"), "m"
    )
    assert answer["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}
    ]
    assert answer["stop_reason"] == "tool_use"


def test_arguments_that_are_not_json_are_kept() -> None:
    call = {"id": "c", "function": {"name": "f", "arguments": "not json"}}
    answer = anthropic.message(
        completion({"role": "assistant", "tool_calls": [call]}, "tool_calls"), "m"
    )
    assert answer["content"][0]["input"] == {"arguments": "not json"}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"object": "chat.completion.chunk", "choices": choices, **extra}


def run(stream: anthropic.MessageStream, chunks: list[Any]) -> list[anthropic.Event]:
    events = stream.start()
    for payload in chunks:
        events += stream.feed(payload)
    return events + stream.finish()


def test_a_text_stream_is_anthropics_event_sequence() -> None:
    events = run(
        anthropic.MessageStream("m"),
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        ],
    )
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(payload["type"] == name for name, payload in events)
    assert events[0][1]["message"]["content"] == []
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert [e[1]["delta"]["text"] for e in events[2:4]] == ["Hel", "lo"]
    assert events[5][1]["delta"]["stop_reason"] == "end_turn"
    assert events[5][1]["usage"] == {"input_tokens": 5, "output_tokens": 2}


def test_a_streamed_tool_call_is_a_tool_use_block_with_json_deltas() -> None:
    head = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": ""}}  # fmt: skip
    events = run(
        anthropic.MessageStream("m"),
        [
            chunk({"content": "Looking."}),
            chunk({"tool_calls": [head]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Oslo"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "id": "call_2",
                                   "function": {"name": "time", "arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
        ],
    )  # fmt: skip
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[4][1]["index"] == 1
    assert events[4][1]["content_block"] == {
        "type": "tool_use", "id": "call_1", "name": "weather", "input": {}}  # fmt: skip
    partial = "".join(e[1]["delta"]["partial_json"] for e in events[5:7])
    assert json.loads(partial) == {"city": "Oslo"}
    assert events[8][1]["content_block"]["name"] == "time"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_stream_cut_by_max_tokens_says_so_and_without_usage_estimates_it() -> None:
    events = run(anthropic.MessageStream("m"), [chunk({"content": "x" * 40}), chunk({}, "length")])
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["output_tokens"] == 10


def test_an_empty_stream_still_ends_properly() -> None:
    events = run(anthropic.MessageStream("m"), [chunk({}, "stop")])
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
     (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"),
     (500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (415,
     "invalid_request_error")],
)  # fmt: skip
def test_errors_have_anthropics_shape(status: int, kind: str) -> None:
    assert anthropic.error_body(status, "why") == {
        "type": "error", "error": {"type": kind, "message": "why"}}  # fmt: skip


def test_prompt_texts_count_the_tools_too() -> None:
    texts = anthropic.prompt_texts(ask(system="sys", tools=TOOLS))
    assert texts[:2] == ["sys", "hi"]
    assert "weather" in texts[2]

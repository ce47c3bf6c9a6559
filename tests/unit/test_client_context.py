"""Where the retrieved context goes in a standard client's request, and which
messages are the conversation retrieval reads (``application.protocols.client_context``)."""

from __future__ import annotations

from application.protocols.client_context import conversation_of, with_context


def test_context_goes_after_the_clients_system_messages() -> None:
    body = {"model": "m", "messages": [
        {"role": "system", "content": "a"}, {"role": "developer", "content": "b"},
        {"role": "user", "content": "q"}]}  # fmt: skip
    out = with_context(body, "CONTEXT")
    assert [m["content"] for m in out["messages"]] == ["a", "b", "CONTEXT", "q"]
    assert out["messages"][2]["role"] == "system"
    assert len(body["messages"]) == 3  # the caller's body is not changed
    assert with_context(body, None) == body


def test_the_conversation_is_its_text_messages_tool_traffic_left_out() -> None:
    conversation = conversation_of([
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "weather "},
                                     {"type": "input_text", "text": "in Oslo?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        {"role": "user", "content": "and Rome?"},
    ])  # fmt: skip
    assert conversation is not None
    assert [m.role for m in conversation.messages] == ["system", "user", "user"]
    assert conversation.messages[1].content == "weather in Oslo?"
    assert conversation.query == "and Rome?"


def test_no_question_no_conversation() -> None:
    assert conversation_of([{"role": "system", "content": "x"}]) is None
    assert conversation_of([{"role": "user", "content": "   "}]) is None

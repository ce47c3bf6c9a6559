"""Where the retrieved context goes in a standard client's request, and which
messages are the conversation retrieval reads (``application.protocols.client_context``)."""

from __future__ import annotations

from application.protocols.client_context import (
    ContextAsk,
    context_ask,
    conversation_of,
    with_context,
)
from domain.limits import ContextDefaults, ContextUser, KeyPolicy
from domain.principal import Principal, Tier


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


def _key(**context: object) -> Principal:
    defaults = ContextDefaults(**context)  # type: ignore[arg-type]
    return Principal("key_abc", Tier.STANDARD, policy=KeyPolicy(context=defaults))


def test_nothing_unless_asked_or_configured() -> None:
    assert context_ask(Principal("key_abc", Tier.STANDARD)) is None
    assert context_ask(_key()) is None
    assert context_ask(_key(), user_id="alice") is None
    assert context_ask(_key(memory=True, rag=True), memory=False, rag=False) is None


def test_the_keys_defaults_under_the_headers() -> None:
    ask = context_ask(_key(memory=True, rag=True, user_id_from=ContextUser.KEY))
    assert ask == ContextAsk("key_abc", memory=True, rag=True, user_required=False)
    ask = context_ask(_key(memory=True, rag=True), rag=False, user_id="bob")
    assert ask == ContextAsk("bob", memory=True, rag=False, user_required=False)
    asked = context_ask(_key(rag=True), memory=True)
    assert asked is not None
    assert asked.user_required  # asked by header: no user is a 400, not a skip


def test_the_user_from_the_request() -> None:
    ask = context_ask(_key(memory=True, user_id_from=ContextUser.REQUEST))
    assert ask == ContextAsk(None, memory=True, user_required=False, user_from_request=True)
    named = context_ask(_key(memory=True, user_id_from=ContextUser.REQUEST), user_id="carol")
    assert named is not None
    assert not named.user_from_request  # the header names the user

"""The ChatModel contract: every adapter answers as OpenAI's chat API does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from domain.errors import UnsupportedParameter
from domain.health import Status
from tests.contract.conftest import ChatModelUnderTest

HELLO = [{"role": "user", "content": "Say hello."}]


def body(under_test: ChatModelUnderTest, **params: Any) -> dict[str, Any]:
    return {"model": under_test.model, "messages": HELLO, "max_tokens": 8, **params}


async def collect(under_test: ChatModelUnderTest, **params: Any) -> list[dict[str, Any]]:
    stream = await under_test.adapter.stream(body(under_test, stream=True, **params))
    chunks = []
    try:
        async for payload in stream:
            chunk = json.loads(payload)
            # The usage-only chunk is named as such, so no caller reads the bytes for it.
            assert stream.usage_only == (not chunk["choices"] and chunk.get("usage") is not None)
            chunks.append(chunk)
    finally:
        await stream.aclose()
    # The stream keeps what it relayed: the text and how it finished.
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert stream.content == text
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert stream.finish_reason == next(f for f in reversed(finishes) if f)
    return chunks


async def test_lists_the_model_it_serves(chat_model: ChatModelUnderTest) -> None:
    cards = await chat_model.adapter.list_models()
    assert chat_model.model in [card.id for card in cards]
    assert all(card.owned_by for card in cards)


async def test_completion_has_openai_shape(chat_model: ChatModelUnderTest) -> None:
    completion = await chat_model.adapter.complete(body(chat_model))
    answer = json.loads(completion.body)
    assert answer["object"] == "chat.completion"
    assert answer["id"]
    assert isinstance(answer["created"], int)
    assert completion.model == answer["model"] == chat_model.model
    choice = answer["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == usage["completion_tokens"]
    assert completion.content == choice["message"]["content"]
    assert completion.finish_reason == choice["finish_reason"]


async def test_max_tokens_bounds_the_answer(chat_model: ChatModelUnderTest) -> None:
    completion = await chat_model.adapter.complete(body(chat_model, max_tokens=1))
    answer = json.loads(completion.body)
    assert answer["usage"]["completion_tokens"] <= 1
    assert answer["choices"][0]["finish_reason"] == "length"


async def test_stream_has_openai_chunk_shape(chat_model: ChatModelUnderTest) -> None:
    chunks = await collect(chat_model)
    assert chunks, "no chunk streamed"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] in (["stop"], ["length"])
    assert finishes[-1] in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text


async def test_stream_usage_when_asked(chat_model: ChatModelUnderTest) -> None:
    if "stream_usage" not in chat_model.features:
        pytest.skip("this upstream sends no usage in streams (llama_cpp.server)")
    chunks = await collect(chat_model, stream_options={"include_usage": True})
    last = chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    tokens = sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content"))
    assert usage["completion_tokens"] == tokens
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_stream_usage_prompt_tokens_match_a_completion(
    chat_model: ChatModelUnderTest,
) -> None:
    if "stream_usage" not in chat_model.features:
        pytest.skip("this upstream sends no usage in streams (llama_cpp.server)")
    completion = await chat_model.adapter.complete(body(chat_model))
    chunks = await collect(chat_model, stream_options={"include_usage": True})
    assert completion.usage is not None
    assert chunks[-1]["usage"]["prompt_tokens"] == completion.usage.prompt_tokens


async def test_closing_a_stream_early_is_clean(chat_model: ChatModelUnderTest) -> None:
    stream = await chat_model.adapter.stream(body(chat_model, stream=True, max_tokens=16))
    async for _ in stream:
        break
    await stream.aclose()
    await stream.aclose()  # idempotent
    # The adapter still serves afterwards.
    assert json.loads((await chat_model.adapter.complete(body(chat_model))).body)["choices"]


async def test_refuses_what_the_model_cannot_do(chat_model: ChatModelUnderTest) -> None:
    if "refuses_unsupported" not in chat_model.features:
        pytest.skip("forwards every parameter to an upstream that decides")
    with pytest.raises(UnsupportedParameter) as raised:
        await chat_model.adapter.complete(body(chat_model, n=2))
    assert raised.value.param == "n"


async def test_reports_healthy(chat_model: ChatModelUnderTest) -> None:
    health = await chat_model.adapter.check()
    assert health.status is Status.HEALTHY
    assert health.critical
    assert health.latency_ms >= 0


OPENAI_FORMS = [
    {"role": "developer", "content": "Answer in one short sentence."},
    {
        "role": "user",
        "name": "ann",
        "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello."}],
    },
]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_takes_openai_message_forms(chat_model: ChatModelUnderTest, streaming: bool) -> None:
    """``developer``, content as a list of text parts, ``name``: as OpenAI takes them."""
    if "openai_message_forms" not in chat_model.features:
        pytest.skip("a plain llama.cpp server takes only {role, content: str}")
    sent = {**body(chat_model), "messages": OPENAI_FORMS}
    if not streaming:
        completion = await chat_model.adapter.complete(sent)
        assert json.loads(completion.body)["choices"][0]["message"]["content"]
        return
    stream = await chat_model.adapter.stream({**sent, "stream": True})
    try:
        assert [payload async for payload in stream]
    finally:
        await stream.aclose()
    assert stream.finish_reason in ("stop", "length")


async def test_concurrent_streams_both_finish(chat_model: ChatModelUnderTest) -> None:
    """A second request never cuts the first one's answer short."""

    async def whole_answer() -> list[dict[str, Any]]:
        return await collect(chat_model, max_tokens=24)

    first, second = await asyncio.gather(whole_answer(), whole_answer())
    for chunks in (first, second):
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finishes[-1] in ("stop", "length"), chunks


@pytest.mark.llama
async def test_embedded_usage_matches_the_servers_own_count(
    llama_server_chat_model: ChatModelUnderTest, embedded_chat_model: ChatModelUnderTest
) -> None:
    """The embedded model assembles its completions from a stream and counts the prompt
    itself: the same count as llama.cpp's own non-streamed usage."""
    sent = body(llama_server_chat_model, max_tokens=4, temperature=0)
    own = await llama_server_chat_model.adapter.complete(sent)
    assembled = await embedded_chat_model.adapter.complete(sent)
    assert own.usage is not None
    assert assembled.usage is not None
    assert assembled.usage.prompt_tokens == own.usage.prompt_tokens
    assert assembled.usage.completion_tokens == own.usage.completion_tokens

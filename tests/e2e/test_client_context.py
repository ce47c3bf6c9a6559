"""Memory and RAG for unmodified clients: the X-Gateway-* headers on
/v1/chat/completions, /v1/messages and /v1/responses put the user's memories and the
tenant's documents before the model (seen through the fake upstream's ``__echo__``),
store the turn, and report each stage's time. Never on unless asked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import FakeUpstream, GatewayProcess, start_gateway, stop
from tests.e2e.clients import bearer, eventually
from tests.e2e.conftest import DEVELOPER_KEY, shared_fake_env
from tests.e2e.openai_errors import assert_openai_error

MODEL = "fake-model"
BEES = "Alice keeps three beehives on the roof of her flat in Lyon."


@pytest.fixture(scope="module")
def fake_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway of this module's own: its knowledge base holds only the documents these
    tests add, so that the same question retrieves the same passages each time it is
    asked (the shared gateway's grows with every suite's documents, and its engine may
    reorganise them between two questions)."""
    gateway = start_gateway(
        shared_fake_env(fake_upstream), tmp_path_factory.mktemp("client-context")
    )
    yield gateway
    stop(gateway.process)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def user(fake_gateway: GatewayProcess) -> Iterator[str]:
    """A user with one memory, and a document in the tenant's knowledge base."""
    user_id = f"alice-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(DEVELOPER_KEY)) as client:
        client.post("/v1/memories", json={"user_id": user_id, "text": BEES}).raise_for_status()
        client.post(
            "/v1/documents",
            json={"text": f"The {user_id} handbook: the reactor coolant is heavy water.",
                  "source": f"handbook-{user_id}.md"},
        ).raise_for_status()  # fmt: skip
        yield user_id
        client.delete("/v1/memories", params={"user_id": user_id})


def asked(user_id: str, *, memory: bool = True, rag: bool = True) -> dict[str, str]:
    return {
        **bearer(DEVELOPER_KEY),
        "X-Gateway-User-Id": user_id,
        "X-Gateway-Memory": "true" if memory else "false",
        "X-Gateway-RAG": "true" if rag else "false",
    }


def sent_messages(echoed: str) -> list[dict[str, Any]]:
    """The messages the upstream received (its ``__echo__`` answer is the body)."""
    messages: list[dict[str, Any]] = json.loads(echoed)["messages"]
    return messages


def stages(headers: httpx.Headers) -> dict[str, float]:
    return {
        part.split(";dur=")[0].strip(): float(part.split(";dur=")[1])
        for part in headers["x-gateway-stages"].split(",")
    }


def test_chat_completions_get_memories_and_documents(
    fake_gateway: GatewayProcess, user: str
) -> None:
    response = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers=asked(user), timeout=30,
        json={"model": MODEL, "messages": [
            {"role": "system", "content": "You are kind."},
            {"role": "user", "content": "__echo__ Where are the beehives, and the coolant?"}]},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    messages = sent_messages(response.json()["choices"][0]["message"]["content"])
    assert messages[0] == {"role": "system", "content": "You are kind."}
    assert messages[1]["role"] == "system"
    assert BEES in messages[1]["content"]
    assert "heavy water" in messages[1]["content"]
    assert messages[2]["content"].startswith("__echo__")
    assert set(stages(response.headers)) == {"embedding", "memory_retrieval", "rag_retrieval"}
    assert all(ms >= 0 for ms in stages(response.headers).values())
    assert response.headers["x-gateway-context"].startswith("memories=1")
    assert response.headers["x-gateway-memory-id"].startswith("mem-")


def test_the_turn_is_stored_write_behind(fake_gateway: GatewayProcess) -> None:
    user_id = f"bob-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers=asked(user_id, rag=False),
        json={"model": MODEL, "messages": [{"role": "user", "content": "My cat is Tom."}]},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    memory_id = answer.headers["x-gateway-memory-id"]

    def stored() -> dict[str, Any] | None:
        found = httpx.get(
            f"{fake_gateway.url}/v1/memories/{memory_id}", params={"user_id": user_id},
            headers=bearer(DEVELOPER_KEY),
        )  # fmt: skip
        return found.json() if found.status_code == 200 else None

    memory = eventually(stored)
    assert memory is not None
    assert "My cat is Tom." in memory["text"]


def test_a_streamed_turn_is_stored_too(fake_gateway: GatewayProcess) -> None:
    user_id = f"carol-{uuid.uuid4().hex[:8]}"
    with httpx.stream(
        "POST", f"{fake_gateway.url}/v1/chat/completions", headers=asked(user_id, rag=False),
        json={"model": MODEL, "stream": True,
              "messages": [{"role": "user", "content": "My dog is Rex."}]},
        timeout=30,
    ) as streamed:  # fmt: skip
        assert "memory_retrieval" in stages(streamed.headers)
        streamed.read()

    def listed() -> list[Any] | None:
        page = httpx.get(
            f"{fake_gateway.url}/v1/memories", params={"user_id": user_id},
            headers=bearer(DEVELOPER_KEY),
        ).json()  # fmt: skip
        return page["data"] or None

    memories = eventually(listed)
    assert memories is not None
    assert "My dog is Rex." in memories[0]["text"]


def test_never_on_unless_asked(fake_gateway: GatewayProcess, user: str) -> None:
    for headers in ({**bearer(DEVELOPER_KEY), "X-Gateway-User-Id": user},
                    asked(user, memory=False, rag=False)):  # fmt: skip
        response = httpx.post(
            f"{fake_gateway.url}/v1/chat/completions", headers=headers, timeout=30,
            json={"model": MODEL, "messages": [{"role": "user", "content": "__echo__ bees?"}]},
        )  # fmt: skip
        messages = sent_messages(response.json()["choices"][0]["message"]["content"])
        assert [m["role"] for m in messages] == ["user"]
        assert "x-gateway-stages" not in response.headers
        assert "x-gateway-memory-id" not in response.headers


def test_anthropic_sdk_gets_the_context(fake_gateway: GatewayProcess, user: str) -> None:
    headers = {k: v for k, v in asked(user, rag=False).items() if k != "Authorization"}
    with anthropic.Anthropic(
        base_url=fake_gateway.url, api_key=DEVELOPER_KEY, default_headers=headers, max_retries=0
    ) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=500, system="Be brief.",
            messages=[{"role": "user", "content": "__echo__ Where are the bees?"}],
        )  # fmt: skip
        message = raw.parse()
        messages = sent_messages(message.content[0].text)  # type: ignore[union-attr]
        assert [m["role"] for m in messages] == ["system", "system", "user"]
        assert BEES in messages[1]["content"]
        assert "memory_retrieval" in stages(raw.headers)
        assert "rag_retrieval" not in stages(raw.headers)
        with client.messages.stream(
            model=MODEL, max_tokens=500, messages=[{"role": "user", "content": "__echo__ bees"}]
        ) as stream:
            text = "".join(stream.text_stream)
        assert BEES in sent_messages(text)[0]["content"]


def test_openai_responses_get_the_context(fake_gateway: GatewayProcess, user: str) -> None:
    headers = {k: v for k, v in asked(user, memory=False).items() if k != "Authorization"}
    with openai.OpenAI(
        base_url=f"{fake_gateway.url}/v1", api_key=DEVELOPER_KEY, default_headers=headers,
        max_retries=0,
    ) as client:  # fmt: skip
        raw = client.responses.with_raw_response.create(
            model=MODEL, input="__echo__ what is the coolant?", instructions="Be brief."
        )
        messages = sent_messages(raw.parse().output_text)
        assert [m["role"] for m in messages] == ["system", "system", "user"]
        assert "heavy water" in messages[1]["content"]
        assert "x-gateway-memory-id" not in raw.headers  # memory not asked: nothing stored
        with client.responses.stream(model=MODEL, input="__echo__ coolant?") as stream:
            final = stream.get_final_response()
        assert "heavy water" in sent_messages(final.output_text)[0]["content"]


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"X-Gateway-Memory": "maybe"}, "X-Gateway-Memory"),
        ({"X-Gateway-RAG": "2"}, "X-Gateway-RAG"),
        ({"X-Gateway-Memory": "true"}, "X-Gateway-User-Id"),
    ],
)
def test_bad_context_headers_are_refused_naming_them(
    fake_gateway: GatewayProcess, headers: dict[str, str], param: str
) -> None:
    response = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers={**bearer(DEVELOPER_KEY), **headers},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )  # fmt: skip
    assert_openai_error(response, 400, param=param)


def test_rag_answers_say_which_passages_they_had_and_cited(
    fake_gateway: GatewayProcess, user: str
) -> None:
    """The same references as /v1/chat gives, in headers an OpenAI client ignores: the
    passages as numbered for the model, and the numbers the answer cites."""
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "__say__Heavy water [1]."}]}
    headers = asked(user, memory=False)
    answer = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers=headers, json=ask, timeout=30
    )
    assert answer.status_code == 200, answer.text
    references = json.loads(answer.headers["x-gateway-references"])
    assert references, "no passage referenced"
    assert [r["number"] for r in references] == list(range(1, len(references) + 1))
    handbook = next(r for r in references if r["source"] == f"handbook-{user}.md")
    assert handbook["document_id"]
    assert handbook["chunk_id"]
    assert handbook["start"] == 0
    assert handbook["end"] > 0
    assert json.loads(answer.headers["x-gateway-citations"]) == [1]
    read = httpx.get(
        f"{fake_gateway.url}/v1/documents/{handbook['document_id']}",
        params={"include": "chunks"}, headers=bearer(DEVELOPER_KEY),
    )  # fmt: skip
    assert handbook["chunk_id"] in [c["id"] for c in read.json()["chunks"]]

    plain = {**ask, "messages": [{"role": "user", "content": "__say__No citation here."}]}
    uncited = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers=headers, json=plain, timeout=30
    )
    assert json.loads(uncited.headers["x-gateway-citations"]) == []

    streamed = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers=headers,
        json={**ask, "stream": True}, timeout=30,
    )  # fmt: skip
    assert json.loads(streamed.headers["x-gateway-references"]) == references
    assert "x-gateway-citations" not in streamed.headers  # the answer was not written yet
    without = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions", headers=asked(user, rag=False), json=ask,
        timeout=30,
    )  # fmt: skip
    assert "x-gateway-references" not in without.headers

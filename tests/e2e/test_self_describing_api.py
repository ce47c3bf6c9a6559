"""An API that explains itself, against the real gateway over HTTP: the model list
names every model (chat and embeddings) as the caller's key may use them, aliases
answer, unknown fields and impossible parameters are named in a 400, the streamed
chat sends its context before generation, and retrieval filters on the fields its
hits show."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.clients import api_client
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY
from tests.e2e.openai_errors import assert_openai_error

EMBEDDER = "all-MiniLM-L6-v2"
DIMENSION = 384


def restricted_key(gateway: GatewayProcess, allowed: list[str]) -> str:
    with api_client(gateway, ADMIN_KEY) as admin:
        created = admin.post(
            "/v1/keys", json={"name": f"only-{uuid.uuid4().hex[:6]}", "allowed_models": allowed}
        )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


# --- models ---------------------------------------------------------------------------
def test_the_model_list_names_chat_and_embedding_models(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway) as client:
        listed = client.get("/v1/models").json()["data"]
    purposes = {m["id"]: m["purpose"] for m in listed}
    assert purposes["fake-model"] == "chat"
    assert purposes["fake-model-2"] == "chat"
    assert purposes[EMBEDDER] == "embeddings"
    embedder = next(m for m in listed if m["id"] == EMBEDDER)
    assert "text-embedding-3-small" in embedder["aliases"]
    default = next(m for m in listed if m["id"] == "fake-model")
    assert "llama-3.3-8b-instruct" in default["aliases"]


def test_an_alias_is_retrievable_and_names_its_model(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway) as client:
        chat = client.get("/v1/models/llama-3.3-8b-instruct")
        embedding = client.get("/v1/models/text-embedding-3-small")
    assert chat.status_code == 200, chat.text
    assert chat.json()["id"] == "llama-3.3-8b-instruct"
    assert chat.json()["root"] == "fake-model"
    assert embedding.status_code == 200, embedding.text
    assert embedding.json()["purpose"] == "embeddings"
    assert embedding.json()["root"] == EMBEDDER


def test_a_restricted_key_sees_only_its_models(fake_gateway: GatewayProcess) -> None:
    key = restricted_key(fake_gateway, ["fake-model"])
    with api_client(fake_gateway, key) as client:
        ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
        forbidden = client.get("/v1/models/fake-model-2")
    assert "fake-model" in ids
    assert "fake-model-2" not in ids
    assert_openai_error(forbidden, 403, code="model_not_allowed", param="model")


# --- embeddings -----------------------------------------------------------------------
@pytest.mark.parametrize("model", ["text-embedding-3-small", "text-embedding-ada-002", EMBEDDER])
def test_openai_embedding_names_are_served_by_the_embedder(
    fake_gateway: GatewayProcess, model: str
) -> None:
    client = openai.OpenAI(base_url=f"{fake_gateway.url}/v1", api_key="sk-test-key-123")
    reply = client.embeddings.create(model=model, input="tokenization matters")
    assert len(reply.data[0].embedding) == DIMENSION
    # The embedder's own WordPiece tokens: "token", "##ization", "matters".
    assert reply.usage.prompt_tokens == 3


def test_an_unknown_embedding_model_lists_the_available_ones(
    fake_gateway: GatewayProcess,
) -> None:
    with api_client(fake_gateway) as client:
        response = client.post("/v1/embeddings", json={"input": "x", "model": "nomic-embed"})
    body = assert_openai_error(response, 404, code="model_not_found", param="model")
    assert EMBEDDER in body["message"]
    assert "text-embedding-3-small" in body["message"]


def test_dimensions_the_embedder_cannot_honour_is_400(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway) as client:
        refused = client.post("/v1/embeddings", json={"input": "x", "dimensions": 128})
        native = client.post("/v1/embeddings", json={"input": "x", "dimensions": DIMENSION})
    body = assert_openai_error(refused, 400, param="dimensions")
    assert "384" in body["message"]
    assert native.status_code == 200, native.text


# --- /v1/chat ---------------------------------------------------------------------------
def chat(content: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 8, **fields}


@pytest.mark.parametrize("field", ["ragk", "stop"])
def test_unified_chat_refuses_an_unknown_field(fake_gateway: GatewayProcess, field: str) -> None:
    with api_client(fake_gateway) as client:
        response = client.post("/v1/chat", json=chat("hi", user_id="u", **{field: 3}))
    body = assert_openai_error(response, 400, param=field)
    assert f"`{field}`" in body["message"]


# Every body of the gateway's own refuses what it does not know, naming the field (the
# path inside the body where it is nested). (method, path, key, body, the param named)
UNKNOWN_FIELDS = [
    ("POST", "/v1/documents", ADMIN_KEY, {"text": "t", "source": "s.md", "sorce": "x"}, "sorce"),
    (
        "POST",
        "/v1/documents",
        ADMIN_KEY,
        {"documents": [{"text": "t", "source": "s.md", "tags": ["a"]}]},
        "documents[0].tags",
    ),
    (
        "POST",
        "/v1/documents",
        ADMIN_KEY,
        {"documents": [{"text": "t", "source": "s.md"}], "mode": "append"},
        "mode",
    ),
    ("POST", "/v1/rag/search", ADMIN_KEY, {"query": "q", "top_k": 3}, "top_k"),
    ("POST", "/v1/embeddings", ADMIN_KEY, {"input": "hi", "dimension": 8}, "dimension"),
    ("POST", "/v1/memories", ADMIN_KEY, {"user_id": "u", "text": "t", "ttl": 3}, "ttl"),
    ("POST", "/v1/memories/search", ADMIN_KEY, {"user_id": "u", "query": "q", "k": 3}, "k"),
    ("PUT", "/v1/memories/mem_x", ADMIN_KEY, {"user_id": "u", "text": "t", "pin": True}, "pin"),
    ("POST", "/v1/keys", ADMIN_KEY, {"name": "n", "teir": "admin"}, "teir"),
    (
        "POST",
        "/v1/chat",
        ADMIN_KEY,
        {"messages": [{"role": "user", "content": "hi", "nmae": "x"}], "user_id": "u"},
        "messages[0].nmae",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "key", "body", "field"),
    UNKNOWN_FIELDS,
    ids=[f"{m} {p} {f}" for m, p, _, _, f in UNKNOWN_FIELDS],
)
def test_every_body_refuses_an_unknown_field(
    fake_gateway: GatewayProcess,
    method: str,
    path: str,
    key: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = httpx.request(
        method,
        f"{fake_gateway.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    error = assert_openai_error(response, 400, param=field)
    assert f"`{field.rsplit('.', 1)[-1]}`" in error["message"], error


@pytest.mark.parametrize("source", ["two\nlines.md", "nul\x00.md", "c1\x85.md"])
def test_a_json_document_source_with_control_characters_is_refused(
    fake_gateway: GatewayProcess, source: str
) -> None:
    response = httpx.post(
        f"{fake_gateway.url}/v1/documents",
        json={"text": "hello", "source": source},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    error = assert_openai_error(response, 400, param="source")
    assert "control characters" in error["message"], error
    listed = httpx.get(
        f"{fake_gateway.url}/v1/documents?limit=100",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ).json()
    assert not [d["source"] for d in listed["data"] if d["source"] == source]


def test_chat_completions_still_forwards_unknown_parameters(
    fake_gateway: GatewayProcess,
) -> None:
    with api_client(fake_gateway) as client:
        response = client.post(
            "/v1/chat/completions", json=chat("__echo__", model="fake-model", ragk=3)
        )
    assert response.status_code == 200, response.text
    assert '"ragk":3' in response.json()["choices"][0]["message"]["content"]


def test_unified_chat_without_user_id_says_memory_was_off(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway) as client:
        answer = client.post("/v1/chat", json=chat("hi", use_rag=False)).json()
    degraded = answer["metadata"]["degraded"]
    assert [d["stage"] for d in degraded] == ["memory"]
    assert "user_id" in degraded[0]["reason"]


def events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event."""
    found: list[tuple[str | None, str]] = []
    name: str | None = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            found.append((name, line.removeprefix("data: ")))
            name = None
    return found


def test_streamed_events_are_named(fake_gateway: GatewayProcess) -> None:
    with (
        api_client(fake_gateway) as client,
        client.stream("POST", "/v1/chat", json=chat("hi", user_id="u", stream=True)) as response,
    ):
        received = events(response)
    names = [name for name, _ in received]
    assert names[0] == "context"
    assert set(names[1:-2]) == {"chunk"}
    assert names[-2:] == ["metadata", None]
    assert received[-1][1] == "[DONE]"
    assert '"object":"unified.chat.context"' in received[0][1]


def test_the_context_is_sent_before_generation(fake_gateway: GatewayProcess) -> None:
    """The upstream fails at once: the context (retrieval's result) still arrives, then
    an error event. Before, the whole answer was the upstream's error."""
    body = chat("__status_500__", user_id="u", stream=True)
    with api_client(fake_gateway) as client, client.stream("POST", "/v1/chat", json=body) as r:
        status = r.status_code
        received = events(r)
    assert status == 200
    assert [name for name, _ in received] == ["context", "error"]
    assert '"error"' in received[1][1]


def test_an_unknown_model_is_still_a_404_when_streaming(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway) as client:
        response = client.post("/v1/chat", json=chat("hi", model="no-such", stream=True))
    assert_openai_error(response, 404, code="model_not_found")


def test_context_and_first_token_times(fake_gateway: GatewayProcess) -> None:
    """Not asserted (wall-clock): the figures, printed with -s."""
    body = chat("__sleep_1500__ hi", user_id="u", stream=True)
    started = time.perf_counter()
    seen: dict[str, float] = {}
    with api_client(fake_gateway) as client, client.stream("POST", "/v1/chat", json=body) as r:
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
                seen.setdefault(name, time.perf_counter() - started)
    assert {"context", "chunk"} <= seen.keys()
    print(f"context after {seen['context'] * 1000:.0f} ms; first chunk after "
          f"{seen['chunk'] * 1000:.0f} ms")  # fmt: skip


# --- retrieval ------------------------------------------------------------------------
def test_search_filters_on_the_fields_hits_show(fake_gateway: GatewayProcess) -> None:
    source = f"filters-{uuid.uuid4().hex[:8]}.md"
    text = f"The {source} manual explains how to calibrate the torque wrench."
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        created = client.post("/v1/documents", json={"text": text, "source": source})
        assert created.status_code == 201, created.text
        document_id = created.json()["id"]

        def search(where: dict[str, Any]) -> list[dict[str, Any]]:
            response = client.post(
                "/v1/rag/search", json={"query": "calibrate torque wrench", "filter": where}
            )
            assert response.status_code == 200, response.text
            return list(response.json()["data"])

        by_source = search({"source": source})
        by_id = search({"document_id": document_id})
        recent = search({"source": source, "created_at": {"gte": "2020-01-01T00:00:00Z"}})
        future = search({"source": source, "created_at": {"gte": "2999-01-01"}})
    assert [h["metadata"]["source"] for h in by_source] == [source]
    assert [h["metadata"]["document_id"] for h in by_id] == [document_id]
    assert len(recent) == 1
    assert future == []
    hit = by_source[0]
    assert isinstance(hit["metadata"]["created_at"], int)
    assert 0 < hit["similarity"] <= 1
    assert hit["score"] != hit["similarity"]  # fusion's score, apart from the cosine


@pytest.mark.parametrize(
    ("where", "param"),
    [
        ({"created_at": {"gte": "last tuesday"}}, "filter.created_at.gte"),
        ({"created_at": "2026-01-01"}, "filter.created_at"),
        ({"source": 3}, "filter.source"),
    ],
)
def test_a_filter_of_the_wrong_type_is_400(
    fake_gateway: GatewayProcess, where: dict[str, Any], param: str
) -> None:
    with api_client(fake_gateway) as client:
        response = client.post("/v1/rag/search", json={"query": "x", "filter": where})
    assert_openai_error(response, 400, param=param)


def test_hits_are_in_the_order_of_their_score(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway) as client:
        hits = client.post("/v1/rag/search", json={"query": "manual", "k": 10}).json()["data"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)

"""``POST /v1/chat``, the seed's unified endpoint, over HTTP: its response shape, defaults
and bounds, memory across requests (per user, per tenant), RAG context, streaming,
upstream failures and the per-stage timings.

Most tests run against the fake upstream, whose ``__echo__`` directive answers with the
JSON of the request the gateway sent upstream: what the model was actually given."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess, free_port, start_gateway, stop
from tests.e2e.clients import api_client, eventually, logged_request, sse_data
from tests.e2e.conftest import DEVELOPER_KEY
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

CHAT = "/v1/chat"
STAGES = {"embedding", "memory_retrieval", "rag_retrieval", "generation", "total_latency"}
# Retrieval gets a quarter of the budget; a loaded machine can miss the default 750 ms on
# a cold index. Tests about what retrieval finds give it room (the seed's bound: 60 s).
ROOMY = {"latency_budget_ms": 60_000}
FACT = "My favourite city is Reykjavik"
QUESTION = "__echo__ Which city do I like?"
METADATA_FIELDS = {
    "memory_retrieval_ms", "rag_retrieval_ms", "generation_ms", "total_latency_ms",
    "memories_retrieved", "rag_documents_retrieved", "memory_stored", "memory_id",
    "degraded", "embedding_ms", "within_budget",
}  # fmt: skip
TENANT_KEYS = "sk-a:standard:acme,sk-b:standard:globex"
# The seed's fields of a passage, then where it comes from (added fields only).
PASSAGE_FIELDS = {
    "text", "score", "similarity", "metadata",
    "number", "document_id", "source", "chunk_id", "page", "heading_path", "start", "end",
}  # fmt: skip
UNREACHABLE_MODEL = "unreachable-model"


def unique(name: str) -> str:
    """A user id, source or label no other test (or earlier run) shares."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def messages(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def chat(client: httpx.Client, content: str, **params: Any) -> dict[str, Any]:
    """A successful ``/v1/chat`` answer."""
    response = client.post(CHAT, json={"messages": messages(content), **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sent_upstream(answer: dict[str, Any]) -> dict[str, Any]:
    """The request the gateway sent the model (an ``__echo__`` answer)."""
    request: dict[str, Any] = json.loads(answer["choices"][0]["message"]["content"])
    return request


def system_prompt(answer: dict[str, Any]) -> str:
    """The system message the gateway put before the conversation ("" when none)."""
    first = sent_upstream(answer)["messages"][0]
    return str(first["content"]) if first["role"] == "system" else ""


def listed(client: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/memories", params={"user_id": user_id})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def wait_until_stored(client: httpx.Client, user_id: str, memory_id: str) -> None:
    """The write-behind stores a turn after the answer: poll until it is listed."""
    found = eventually(
        lambda: [m for m in listed(client, user_id) if m["id"] == memory_id], within_s=15
    )
    assert found, f"memory {memory_id} of {user_id} was never stored"


def tell(client: httpx.Client, user_id: str, fact: str = FACT) -> dict[str, Any]:
    """Say ``fact`` as ``user_id`` and wait until the turn is stored as memory."""
    told = chat(client, fact, user_id=user_id, **ROOMY)
    assert told["metadata"]["memory_stored"] is True, told["metadata"]
    wait_until_stored(client, user_id, told["metadata"]["memory_id"])
    return told


def ingest(gateway: GatewayProcess, text: str, source: str, **metadata: Any) -> None:
    with api_client(gateway, DEVELOPER_KEY) as developer:
        response = developer.post(
            "/v1/documents", json={"text": text, "source": source, "metadata": metadata}
        )
    assert response.status_code == 201, response.text


def is_iso_timestamp(value: Any) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def assert_metadata_shape(metadata: dict[str, Any]) -> None:
    assert set(metadata) >= METADATA_FIELDS, metadata
    timings = [metadata[name] for name in METADATA_FIELDS if name.endswith("_ms")]
    assert all(isinstance(ms, int | float) for ms in timings), metadata
    assert all(ms >= 0 for ms in timings), metadata
    for name in ("memories_retrieved", "rag_documents_retrieved"):
        assert isinstance(metadata[name], int), metadata
        assert metadata[name] >= 0, metadata
    assert isinstance(metadata["memory_stored"], bool)
    assert isinstance(metadata["within_budget"], bool)
    assert metadata["memory_id"] is None or isinstance(metadata["memory_id"], str)
    assert isinstance(metadata["degraded"], list)
    for entry in metadata["degraded"]:
        assert set(entry) == {"stage", "reason"}, entry
        assert entry["stage"], entry
        assert entry["reason"], entry


def assert_context_shape(context: dict[str, Any]) -> None:
    assert set(context) == {"memories", "rag_documents"}, context
    for memory in context["memories"]:
        assert set(memory) == {"text", "score", "similarity", "timestamp"}, memory
        assert isinstance(memory["text"], str)
        assert isinstance(memory["score"], float)
        assert isinstance(memory["similarity"], float)
        assert is_iso_timestamp(memory["timestamp"]), memory
    for number, document in enumerate(context["rag_documents"], 1):
        assert set(document) == PASSAGE_FIELDS, document
        assert document["number"] == number  # as the model saw it: [number]
        assert document["document_id"] == document["metadata"]["document_id"]
        assert document["source"] == document["metadata"]["source"]
        assert isinstance(document["chunk_id"], str)
        assert isinstance(document["heading_path"], list)
        assert 0 <= document["start"] <= document["end"]
        assert isinstance(document["text"], str)
        assert isinstance(document["score"], float)
        assert isinstance(document["similarity"], float)
        assert isinstance(document["metadata"], dict)


def assert_seed_shape(body: dict[str, Any]) -> None:
    """The seed's "Response Structure", plus ``degraded``/``embedding_ms``/``within_budget``."""
    expected = {"id", "object", "created", "model", "choices", "usage", "context", "metadata"}
    assert set(body) == expected, body
    assert body["id"].startswith("unified-")
    assert body["object"] == "unified.chat.completion"
    assert isinstance(body["created"], int)
    assert body["created"] > 0
    assert isinstance(body["model"], str)
    assert body["model"]
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert_context_shape(body["context"])
    assert_metadata_shape(body["metadata"])
    assert body["metadata"]["memories_retrieved"] == len(body["context"]["memories"])
    assert body["metadata"]["rag_documents_retrieved"] == len(body["context"]["rag_documents"])


@pytest.fixture(scope="module")
def client(fake_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with api_client(fake_gateway) as standard:
        yield standard


TENANT_GATEWAY = pytest.StashKey[InProcessGateway]()


def shared_tenant_gateway(
    config: pytest.Config, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> InProcessGateway:
    """One gateway for the session, whichever module asks first, served in process: two
    tenants' keys (``sk-a`` of acme, ``sk-b`` of globex) and two upstreams, the fake
    serving ``fake-model`` and nothing where ``unreachable-model`` is served. Short-term
    context is off: what a later request knows comes from long-term memory alone."""
    if TENANT_GATEWAY not in config.stash:
        model_map = {"fake-model": [upstream.url], UNREACHABLE_MODEL: [nowhere()]}
        env = {
            "GATEWAY_MODEL_MAP": json.dumps(model_map),
            "GATEWAY_DEFAULT_MODEL": "fake-model",
            "API_KEYS": TENANT_KEYS,
            "GATEWAY_RECENT_TURNS": "0",
        }
        serving = contextlib.ExitStack()
        config.stash[TENANT_GATEWAY] = serving.enter_context(
            in_process_gateway(env, tmp_path_factory.mktemp("tenants"))
        )
        config.add_cleanup(serving.close)
    return config.stash[TENANT_GATEWAY]


@pytest.fixture(scope="module")
def tenant_gateway(
    request: pytest.FixtureRequest,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> InProcessGateway:
    return shared_tenant_gateway(request.config, fake_upstream, tmp_path_factory)


def nowhere() -> str:
    """A URL where nothing listens (a freshly freed port): connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


# --- the seed's shape, defaults and bounds ------------------------------------------------


def test_the_seeds_minimal_curl_body_works(client: httpx.Client) -> None:
    seed_curl = b'{"messages": [{"role": "user", "content": "Hello!"}]}'
    response = client.post(CHAT, content=seed_curl, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_seed_shape(body)
    assert body["choices"][0]["message"]["content"]
    # No user_id: no memory read or written.
    assert body["context"]["memories"] == []
    assert body["metadata"]["memory_stored"] is False
    assert body["metadata"]["memory_id"] is None


def test_full_answer_has_the_seeds_shape_with_both_contexts(
    client: httpx.Client, fake_gateway: GatewayProcess
) -> None:
    user = unique("shape")
    marker = unique("glacier")
    ingest(fake_gateway, f"The {marker} glacier moves forty metres a year.", f"{marker}.md")
    client.post("/v1/memories", json={"user_id": user, "text": f"I once hiked the {marker}."})
    body = chat(client, f"How fast is the {marker} glacier?", user_id=user, **ROOMY)
    assert_seed_shape(body)
    assert body["context"]["memories"]
    assert body["context"]["rag_documents"]
    assert body["metadata"]["degraded"] == []
    assert body["metadata"]["memory_stored"] is True
    assert body["metadata"]["memory_id"]


def test_defaults_are_the_seeds(client: httpx.Client, fake_gateway: GatewayProcess) -> None:
    user = unique("defaults")
    for n in range(6):
        added = client.post(
            "/v1/memories", json={"user_id": user, "text": f"Fact {n}: I own {n} cats."}
        )
        assert added.status_code == 201, added.text
    marker = unique("lighthouse")
    for n in range(4):
        ingest(fake_gateway, f"Lighthouse {marker} number {n} has {n} lamps.", f"{marker}-{n}.md")
    body = chat(client, f"__echo__ How many cats and {marker} lamps?", user_id=user, **ROOMY)
    upstream = sent_upstream(body)
    assert (upstream["max_tokens"], upstream["temperature"], upstream["top_p"]) == (2048, 0.7, 0.9)
    # The seed's default model name is served by the gateway's default model.
    assert upstream["model"] == body["model"] == "fake-model"
    assert body["metadata"]["memories_retrieved"] == 5  # memory_limit 5, use_memory true
    assert body["metadata"]["rag_documents_retrieved"] == 3  # rag_k 3, use_rag true
    assert body["metadata"]["memory_stored"] is True  # store_memory true


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rag_k", 0), ("rag_k", 11), ("memory_limit", 0), ("memory_limit", 21),
        ("temperature", 2.5), ("top_p", 1.5), ("max_tokens", 0), ("latency_budget_ms", 5),
    ],
)  # fmt: skip
def test_out_of_bounds_is_400_naming_the_field(
    client: httpx.Client, field: str, value: float
) -> None:
    response = client.post(CHAT, json={"messages": messages("hi"), field: value})
    assert_openai_error(response, 400, param=field)


def test_empty_messages_is_400_naming_messages(client: httpx.Client) -> None:
    assert_openai_error(client.post(CHAT, json={"messages": []}), 400, param="messages")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rag_k", 1), ("rag_k", 10), ("memory_limit", 1), ("memory_limit", 20),
        ("temperature", 0.0), ("temperature", 2.0), ("top_p", 0.0), ("top_p", 1.0),
    ],
)  # fmt: skip
def test_the_bounds_themselves_are_accepted(client: httpx.Client, field: str, value: float) -> None:
    chat(client, "hi", user_id=unique("bounds"), **{field: value})


# --- memory across requests ---------------------------------------------------------------


def test_a_fact_told_earlier_reaches_the_model_later(client: httpx.Client) -> None:
    alice = unique("alice")
    tell(client, alice)
    asked = chat(client, QUESTION, user_id=alice, **ROOMY)
    assert "Reykjavik" in system_prompt(asked)
    assert asked["metadata"]["degraded"] == []


def test_a_fact_told_earlier_appears_in_context_memories(client: httpx.Client) -> None:
    alice = unique("alice")
    tell(client, alice)
    asked = chat(client, QUESTION, user_id=alice, **ROOMY)
    assert any("Reykjavik" in m["text"] for m in asked["context"]["memories"]), asked["context"]


def test_another_user_sees_nothing_of_it(client: httpx.Client) -> None:
    alice, bob = unique("alice"), unique("bob")
    tell(client, alice)
    # No documents: other tests' documents may mention the city; memory is the question.
    asked = chat(client, QUESTION, user_id=bob, use_rag=False, **ROOMY)
    assert asked["context"]["memories"] == []
    assert "Reykjavik" not in system_prompt(asked)


def test_long_term_memory_alone_is_in_context_memories(tenant_gateway: InProcessGateway) -> None:
    alice = unique("alice")
    with api_client(tenant_gateway, "sk-a") as acme:
        tell(acme, alice)
        asked = chat(acme, QUESTION, user_id=alice, **ROOMY)
    (memory,) = asked["context"]["memories"]
    assert FACT in memory["text"]
    assert is_iso_timestamp(memory["timestamp"])
    assert asked["metadata"]["memories_retrieved"] == 1
    assert "Reykjavik" in system_prompt(asked)


def test_another_tenant_with_the_same_user_id_sees_nothing(
    tenant_gateway: InProcessGateway,
) -> None:
    alice = unique("alice")
    with api_client(tenant_gateway, "sk-a") as acme:
        tell(acme, alice)
    with api_client(tenant_gateway, "sk-b") as globex:
        asked = chat(globex, QUESTION, user_id=alice, use_rag=False, **ROOMY)
    assert asked["context"]["memories"] == []
    assert "Reykjavik" not in system_prompt(asked)


def test_without_user_id_nothing_is_remembered(client: httpx.Client) -> None:
    body = chat(client, FACT, **ROOMY)
    assert body["metadata"]["memory_stored"] is False
    assert body["metadata"]["memory_id"] is None
    assert body["metadata"]["memories_retrieved"] == 0


def test_store_memory_false_writes_nothing(client: httpx.Client) -> None:
    user = unique("quiet")
    unstored = chat(client, FACT, user_id=user, store_memory=False)
    assert unstored["metadata"]["memory_stored"] is False
    assert unstored["metadata"]["memory_id"] is None
    # The queue is first in, first out: once a later turn is stored, an earlier one
    # would have been too.
    later = tell(client, user, "I also like tea")
    assert [m["id"] for m in listed(client, user)] == [later["metadata"]["memory_id"]]


def test_use_memory_false_puts_no_memory_in_context(client: httpx.Client) -> None:
    user = unique("forgetful")
    tell(client, user)
    asked = chat(client, QUESTION, user_id=user, use_memory=False, use_rag=False, **ROOMY)
    assert asked["context"]["memories"] == []
    assert asked["metadata"]["memories_retrieved"] == 0
    assert "Reykjavik" not in system_prompt(asked)


# --- RAG ----------------------------------------------------------------------------------


def test_an_ingested_document_is_in_the_context(
    client: httpx.Client, fake_gateway: GatewayProcess
) -> None:
    marker = unique("quillfeather")
    source = f"{marker}.md"
    ingest(fake_gateway, f"The {marker} lamp burns whale-free biodiesel.", source, topic="lamps")
    asked = chat(client, f"__echo__ What does the {marker} lamp burn?", use_memory=False, **ROOMY)
    hits = [d for d in asked["context"]["rag_documents"] if marker in d["text"]]
    assert hits, asked["context"]
    assert hits[0]["metadata"]["source"] == source
    assert hits[0]["metadata"]["topic"] == "lamps"
    assert marker in system_prompt(asked)


def test_rag_filter_narrows_the_documents(
    client: httpx.Client, fake_gateway: GatewayProcess
) -> None:
    marker = unique("kettle")
    wanted, other = unique("team"), unique("team")
    ingest(fake_gateway, f"The {marker} kettle boils in one minute.", f"{marker}-a.md", team=other)
    ingest(fake_gateway, f"The {marker} kettle holds two litres.", f"{marker}-b.md", team=wanted)
    asked = chat(client, f"Tell me about the {marker} kettle", rag_filter={"team": wanted}, **ROOMY)
    documents = asked["context"]["rag_documents"]
    assert documents
    assert {d["metadata"]["team"] for d in documents} == {wanted}


# --- streaming ----------------------------------------------------------------------------


def assert_unified_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Context first, then the model's chunks, then the metadata, then ``[DONE]``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert events[0]["object"] == "unified.chat.context"
    assert_context_shape(events[0]["context"])
    assert events[-1]["object"] == "unified.chat.metadata"
    assert_metadata_shape(events[-1]["metadata"])
    assert set(events[-1]["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    chunks = events[1:-1]
    assert chunks, events
    assert all(c["object"] == "chat.completion.chunk" for c in chunks), chunks
    return events


def test_citations_map_the_answers_numbers_to_the_passages(
    client: httpx.Client, fake_gateway: GatewayProcess
) -> None:
    marker = unique("citrine")
    ingest(fake_gateway, f"# Lamps\n\nThe {marker} lamp burns oil.", f"{marker}.md")
    # The fake upstream's __echo__ answers with the request it got: the passages
    # numbered in the system message, so the "answer" cites each of them.
    echoed = chat(client, f"__echo__ What does the {marker} lamp burn?", use_memory=False, **ROOMY)
    plain = chat(client, f"What does the {marker} lamp burn?", use_memory=False, **ROOMY)
    passages = echoed["context"]["rag_documents"]
    citations = echoed["metadata"]["citations"]
    assert passages
    assert [c["number"] for c in citations] == [p["number"] for p in passages]
    for citation, passage in zip(citations, passages, strict=True):
        assert citation["chunk_id"] == passage["chunk_id"]
        assert citation["document_id"] == passage["document_id"]
    [mine] = [p for p in passages if marker in p["text"]]
    assert mine["heading_path"] == ["Lamps"]
    # An answer that cites nothing ("tok0 tok1 ..."): no citation is made up.
    assert plain["context"]["rag_documents"]
    assert plain["metadata"]["citations"] == []


def test_streaming_sends_context_chunks_metadata_then_done(client: httpx.Client) -> None:
    user = unique("streamer")
    response = client.post(
        CHAT, json={"messages": messages("hello"), "user_id": user, "stream": True, **ROOMY}
    )
    events = assert_unified_events(response)
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in events[1:-1] if c["choices"]
    )
    assert text.split() == [f"tok{i}" for i in range(8)]
    metadata = events[-1]["metadata"]
    assert metadata["citations"] == []
    assert metadata["memory_stored"] is True
    wait_until_stored(client, user, metadata["memory_id"])


def test_streaming_carries_the_retrieved_context_first(client: httpx.Client) -> None:
    user = unique("streamer")
    tell(client, user)
    response = client.post(
        CHAT, json={"messages": messages(QUESTION), "user_id": user, "stream": True, **ROOMY}
    )
    events = assert_unified_events(response)
    assert events[-1]["metadata"]["memories_retrieved"] == len(events[0]["context"]["memories"])


# --- upstream failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directive", "status"),
    [("__status_503__", 503), ("__sleep_5000__", 504)],  # the fake gateway waits 2 s
    ids=["overloaded-503", "timeout-504"],
)
def test_upstream_failure_maps_to_status(client: httpx.Client, directive: str, status: int) -> None:
    response = client.post(CHAT, json={"messages": messages(directive)})
    assert_openai_error(response, status)


@pytest.mark.parametrize(
    ("directive", "code"),
    [("__status_503__", "upstream_overloaded"), ("__sleep_5000__", "upstream_timeout")],
    ids=["overloaded-503", "timeout-504"],
)
def test_streamed_upstream_failure_follows_the_context_as_an_error_event(
    client: httpx.Client, directive: str, code: str
) -> None:
    """Streaming, the context is sent before generation starts (status 200 by then): a
    failing upstream is an ``error`` event after it."""
    response = client.post(CHAT, json={"messages": messages(directive), "stream": True})
    assert response.status_code == 200, response.text
    context, failure = (json.loads(d) for d in sse_data(response.text))
    assert context["object"] == "unified.chat.context"
    assert failure["error"]["code"] == code
    assert "event: context\n" in response.text
    assert "event: error\n" in response.text


def test_unreachable_upstream_is_502(tenant_gateway: InProcessGateway) -> None:
    with api_client(tenant_gateway, "sk-a") as acme:
        body = {"messages": messages("hi"), "model": UNREACHABLE_MODEL}
        assert_openai_error(acme.post(CHAT, json=body), 502)
        streamed = acme.post(CHAT, json={**body, "stream": True})
    assert streamed.status_code == 200
    assert json.loads(sse_data(streamed.text)[-1])["error"]["code"] == "upstream_unavailable"


# --- timings: metrics and the request's log line -----------------------------------------


def test_stage_timings_feed_metrics_and_the_log_line(
    client: httpx.Client, fake_gateway: GatewayProcess
) -> None:
    request_id = f"unified-{uuid.uuid4().hex}"
    client.post(CHAT, json={"messages": messages("hi")}, headers={"X-Request-ID": request_id})
    stages = client.get("/metrics").json()["stages"]
    assert set(stages) >= STAGES, stages
    for stage in STAGES:
        assert stages[stage]["count"] >= 1
        assert all(stages[stage][p] >= 0 for p in ("p50_ms", "p95_ms", "p99_ms"))
    (line,) = logged_request(fake_gateway, request_id)
    assert set(line["stages_ms"]) == STAGES
    assert all(isinstance(v, int | float) and v >= 0 for v in line["stages_ms"].values())


# --- the real model -----------------------------------------------------------------------


@pytest.mark.llama
def test_real_model_answers_in_the_seeds_shape(embedded_gateway: GatewayProcess) -> None:
    with api_client(embedded_gateway, timeout=120) as standard:
        body = chat(standard, "Hello!", max_tokens=16)
    assert_seed_shape(body)
    assert body["choices"][0]["message"]["content"].strip()
    assert 0 < body["usage"]["completion_tokens"] <= 16


@pytest.mark.llama
def test_real_model_streams_the_unified_events(embedded_gateway: GatewayProcess) -> None:
    with api_client(embedded_gateway, timeout=120) as standard:
        response = standard.post(
            CHAT, json={"messages": messages("Say hi"), "stream": True, "max_tokens": 8}
        )
    events = assert_unified_events(response)
    assert 0 < events[-1]["usage"]["completion_tokens"] <= 8


# --- the first request after a start -------------------------------------------------------


def test_the_first_request_after_a_start_finds_retrieval_warm(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Loading the embedding model and opening the stores happen at start (the log says
    what they cost), not in the first user's 750 ms retrieval deadline."""
    gateway = start_gateway(
        {"MAX_SERVE_URL": fake_upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model"},
        tmp_path_factory.mktemp("cold-start"),
    )
    try:
        with api_client(gateway) as client:
            first = chat(client, "What do I like?", user_id=unique("first"), max_tokens=8)
        assert first["metadata"]["degraded"] == []
        assert first["metadata"]["latency_budget_ms"] == 3000  # the default: 750 ms to retrieve
        warmed = [
            json.loads(line)
            for line in gateway.log().splitlines()
            if line.startswith("{") and "retrieval warmed up" in line
        ]
        assert len(warmed) == 1
        assert set(warmed[0]["stages_ms"]) == {"embedding", "memory_retrieval", "rag_retrieval"}
        assert warmed[0]["degraded"] == []
    finally:
        stop(gateway.process)  # type: ignore[arg-type]

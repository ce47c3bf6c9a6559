"""``/v1/memories`` over HTTP: add, list (paged, newest first), search, get, correct,
delete, forget a user; bad input; and tenant isolation with two tenants' keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess
from tests.e2e.clients import api_client, eventually
from tests.e2e.openai_errors import assert_openai_error
from tests.e2e.test_unified_chat import (
    FACT,
    QUESTION,
    ROOMY,
    chat,
    shared_tenant_gateway,
    system_prompt,
    unique,
)
from tests.in_process import InProcessGateway

MEMORIES = "/v1/memories"
MEMORY_FIELDS = {"id", "user_id", "text", "timestamp", "metadata", "object"}


def instant(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def add(client: httpx.Client, user_id: str, text: str, **metadata: Any) -> dict[str, Any]:
    response = client.post(MEMORIES, json={"user_id": user_id, "text": text, "metadata": metadata})
    assert response.status_code == 201, response.text
    memory: dict[str, Any] = response.json()
    return memory


def page(client: httpx.Client, user_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(MEMORIES, params={"user_id": user_id, **params})
    assert response.status_code == 200, response.text
    listing: dict[str, Any] = response.json()
    return listing


def search(client: httpx.Client, user_id: str, query: str, **params: Any) -> list[dict[str, Any]]:
    response = client.post(
        f"{MEMORIES}/search", json={"user_id": user_id, "query": query, **params}
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


@pytest.fixture(scope="module")
def client(fake_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with api_client(fake_gateway) as standard:
        yield standard


@pytest.fixture(scope="module")
def tenant_gateway(
    request: pytest.FixtureRequest,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> InProcessGateway:
    return shared_tenant_gateway(request.config, fake_upstream, tmp_path_factory)


def test_add_returns_the_memory(client: httpx.Client) -> None:
    user = unique("alice")
    memory = add(client, user, "Alice lives in Oslo", source="onboarding")
    assert set(memory) == MEMORY_FIELDS
    assert memory["object"] == "memory"
    assert isinstance(memory["id"], str)
    assert memory["id"]
    assert (memory["user_id"], memory["text"]) == (user, "Alice lives in Oslo")
    assert memory["metadata"] == {"source": "onboarding"}
    assert datetime.fromisoformat(memory["timestamp"]).tzinfo is not None


def test_get_returns_what_was_added(client: httpx.Client) -> None:
    user = unique("alice")
    memory = add(client, user, "Alice plays the cello", kind="hobby")
    response = client.get(f"{MEMORIES}/{memory['id']}", params={"user_id": user})
    assert response.status_code == 200, response.text
    got = response.json()
    assert {k: got[k] for k in MEMORY_FIELDS - {"timestamp"}} == {
        k: memory[k] for k in MEMORY_FIELDS - {"timestamp"}
    }
    assert instant(got["timestamp"]) == pytest.approx(instant(memory["timestamp"]), abs=1e-3)


def test_list_pages_newest_first(client: httpx.Client) -> None:
    user = unique("pager")
    ids = [add(client, user, f"Memory number {n}")["id"] for n in range(5)]
    newest_first = ids[::-1]
    first = page(client, user, limit=2)
    assert [m["id"] for m in first["data"]] == newest_first[:2]
    assert first["has_more"] is True
    assert first["object"] == "list"
    second = page(client, user, limit=2, after=first["data"][-1]["id"])
    assert [m["id"] for m in second["data"]] == newest_first[2:4]
    assert second["has_more"] is True
    last = page(client, user, limit=2, after=second["data"][-1]["id"])
    assert [m["id"] for m in last["data"]] == newest_first[4:]
    assert last["has_more"] is False
    assert [m["id"] for m in page(client, user)["data"]] == newest_first


def test_search_finds_the_relevant_memory_first(client: httpx.Client) -> None:
    user = unique("searcher")
    add(client, user, "I am allergic to peanuts")
    wanted = add(client, user, "My sister lives in Lisbon, Portugal")
    add(client, user, "I drive a blue bicycle to work")
    hits = search(client, user, "Where does my sister live?", limit=3)
    assert len(hits) == 3
    assert hits[0]["id"] == wanted["id"]
    for hit in hits:
        assert set(hit) == {"id", "text", "score", "similarity", "timestamp"}
        assert isinstance(hit["score"], float)
        assert isinstance(hit["similarity"], float)
        assert datetime.fromisoformat(hit["timestamp"]).tzinfo is not None
    assert len(search(client, user, "Where does my sister live?", limit=1)) == 1


@pytest.mark.parametrize("limit", [0, 21])
def test_search_limit_out_of_range_is_400(client: httpx.Client, limit: int) -> None:
    response = client.post(
        f"{MEMORIES}/search", json={"user_id": "alice", "query": "anything", "limit": limit}
    )
    assert_openai_error(response, 400, param="limit")


def test_put_corrects_the_text_and_search_finds_it(client: httpx.Client) -> None:
    user = unique("corrector")
    add(client, user, "I work as a baker")
    memory = add(client, user, "My dog is called Rex")
    response = client.put(
        f"{MEMORIES}/{memory['id']}", json={"user_id": user, "text": "My dog is called Bruno"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "My dog is called Bruno"
    assert response.json()["id"] == memory["id"]
    got = client.get(f"{MEMORIES}/{memory['id']}", params={"user_id": user}).json()
    assert got["text"] == "My dog is called Bruno"
    hits = search(client, user, "What is my dog called?")
    assert (hits[0]["id"], hits[0]["text"]) == (memory["id"], "My dog is called Bruno")
    assert all("Rex" not in h["text"] for h in hits)


def test_delete_one_then_it_is_404(client: httpx.Client) -> None:
    user = unique("deleter")
    kept = add(client, user, "Keep me")
    gone = add(client, user, "Delete me")
    response = client.delete(f"{MEMORIES}/{gone['id']}", params={"user_id": user})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": gone["id"], "object": "memory", "deleted": True}
    missing = client.get(f"{MEMORIES}/{gone['id']}", params={"user_id": user})
    assert_openai_error(missing, 404)
    again = client.delete(f"{MEMORIES}/{gone['id']}", params={"user_id": user})
    assert_openai_error(again, 404)
    assert [m["id"] for m in page(client, user)["data"]] == [kept["id"]]


def test_forget_a_user_removes_all_and_only_theirs(client: httpx.Client) -> None:
    user, neighbour = unique("leaving"), unique("staying")
    for n in range(3):
        add(client, user, f"Secret {n}")
    stays = add(client, neighbour, "Still here")
    response = client.delete(MEMORIES, params={"user_id": user})
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": user, "deleted": 3, "object": "memory.forget"}
    assert page(client, user)["data"] == []
    assert search(client, user, "Secret") == []
    assert [m["id"] for m in page(client, neighbour)["data"]] == [stays["id"]]


def test_forget_also_clears_what_the_chat_remembers(client: httpx.Client) -> None:
    user = unique("forgotten")
    memory_id = chat(client, FACT, user_id=user, **ROOMY)["metadata"]["memory_id"]
    assert eventually(lambda: [m for m in page(client, user)["data"] if m["id"] == memory_id])
    assert client.delete(MEMORIES, params={"user_id": user}).json()["deleted"] == 1
    asked = chat(client, QUESTION, user_id=user, store_memory=False, use_rag=False, **ROOMY)
    assert asked["context"]["memories"] == []
    # Neither long-term memory nor the short-term context reach the model.
    assert "Reykjavik" not in system_prompt(asked)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", MEMORIES, None, marks=(), id="list"),
        pytest.param("DELETE", MEMORIES, None, marks=(), id="forget"),
        pytest.param("GET", f"{MEMORIES}/mem-x", None, marks=(), id="get"),
        pytest.param("DELETE", f"{MEMORIES}/mem-x", None, marks=(), id="delete"),
        pytest.param("POST", MEMORIES, {"text": "hi"}, id="add"),
        pytest.param("POST", f"{MEMORIES}/search", {"query": "hi"}, id="search"),
        pytest.param("PUT", f"{MEMORIES}/mem-x", {"text": "hi"}, id="put"),
    ],
)
def test_missing_user_id_is_400_naming_it(
    client: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = client.request(method, path, json=body)
    assert_openai_error(response, 400, param="user_id")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_oversize_text_is_400(client: httpx.Client, method: str) -> None:
    user = unique("verbose")
    path = MEMORIES if method == "POST" else f"{MEMORIES}/{add(client, user, 'short')['id']}"
    response = client.request(method, path, json={"user_id": user, "text": "x" * 20_001})
    assert_openai_error(response, 400, param="text")


def test_text_of_exactly_the_limit_is_accepted(client: httpx.Client) -> None:
    add(client, unique("verbose"), "x" * 20_000)


# --- tenants ------------------------------------------------------------------------------


def test_another_tenant_cannot_reach_a_users_memories(tenant_gateway: InProcessGateway) -> None:
    alice = unique("alice")
    with api_client(tenant_gateway, "sk-a") as acme:
        memory = add(acme, alice, "Alice's PIN hint is her cat's name")
    one = f"{MEMORIES}/{memory['id']}"
    with api_client(tenant_gateway, "sk-b") as globex:
        assert_openai_error(globex.get(one, params={"user_id": alice}), 404)
        assert page(globex, alice)["data"] == []
        assert search(globex, alice, "PIN hint") == []
        corrected = globex.put(one, json={"user_id": alice, "text": "overwritten"})
        assert_openai_error(corrected, 404)
        assert_openai_error(globex.delete(one, params={"user_id": alice}), 404)
        assert globex.delete(MEMORIES, params={"user_id": alice}).json()["deleted"] == 0
    with api_client(tenant_gateway, "sk-a") as acme:
        assert [m["text"] for m in page(acme, alice)["data"]] == [memory["text"]]

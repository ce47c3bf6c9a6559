"""``Mem0MemoryStore``: the MemoryStore contract with extraction off (every test of
``test_memory_store_contract`` that takes ``memory_store`` runs here on Mem0), then a
narrower contract of its own with extraction on, against a stand-in upstream that answers
Mem0's extraction JSON; and what only Mem0 can get wrong (telemetry, its history)."""

from __future__ import annotations

import inspect
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.memory.mem0_store import Mem0MemoryStore
from domain.errors import EmbeddingUnavailable, MemoryUnavailable
from domain.health import Status
from domain.memory import Memory, MemoryOwner, new_memory_id
from tests.conftest import free_port
from tests.contract import test_memory_store_contract as store_contract
from tests.fakes.fake_embedder import FakeEmbedder

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.contract.mem0_fixtures import ExtractingStore, ExtractionUpstream
    from tests.contract.memory_fixtures import StoreUnderTest

pytest_plugins = ["tests.contract.memory_fixtures", "tests.contract.mem0_fixtures"]
pytestmark = [
    pytest.mark.mem0,
    pytest.mark.usefixtures("mem0_installed"),
    # qdrant-client's local mode keeps no payload index; Mem0 asks for some.
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

DIMENSION = 64  # the test embedder's (memory_fixtures.DIMENSION)
HOURS = 3600.0
TURN = "I always take a window seat, I live in Lyon"
FACTS = ["Prefers window seats", "Lives in Lyon"]

# --- the MemoryStore contract, extraction off --------------------------------------------

for _name, _test in vars(store_contract).copy().items():
    if _name.startswith("test_") and "memory_store" in inspect.signature(_test).parameters:
        globals()[_name] = _test

NOT_FOR_MEM0 = {
    "test_an_exact_name_is_found_when_dense_search_misses_it": (
        "Mem0 has no keyword search offline: its BM25 leg needs fastembed, which downloads "
        "the Qdrant/bm25 model from Hugging Face at first use (not part of the [mem0] extra)"
    ),
}


@pytest.fixture(params=[pytest.param("mem0_memory_store", id="mem0:qdrant-local")])
def memory_store(request: pytest.FixtureRequest) -> StoreUnderTest:
    """Mem0 in place of every adapter of the shared suite."""
    reason = NOT_FOR_MEM0.get(request.node.originalname)
    if reason:
        pytest.skip(reason)
    under_test: StoreUnderTest = request.getfixturevalue(request.param)
    return under_test


# --- extraction off: what only Mem0 can get wrong ----------------------------------------


async def test_the_vectors_handed_in_are_used_as_they_are(
    mem0_memory_store: StoreUnderTest,
) -> None:
    memory = await mem0_memory_store.remember("acme", "alice", "My bike is a blue Gazelle.")
    text = "My bike is a red Batavus."
    store = mem0_memory_store.store
    await store.update(
        MemoryOwner("acme", "alice"), memory.id, text, mem0_memory_store.embedder.vector(text)
    )
    [hit] = await mem0_memory_store.search("acme", "alice", "which bike do I ride")
    assert hit.text == text
    assert mem0_memory_store.embedder.calls == [], "Mem0 embedded what it was given"


async def test_no_memory_text_reaches_the_logs(
    mem0_memory_store: StoreUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    memory = await mem0_memory_store.remember("acme", "alice", "My PIN is 4711-SECRET.")
    text = "My PIN is 9922-SECRET."
    store = mem0_memory_store.store
    await store.update(
        MemoryOwner("acme", "alice"), memory.id, text, mem0_memory_store.embedder.vector(text)
    )
    await mem0_memory_store.search("acme", "alice", "what is my PIN")

    assert "SECRET" not in caplog.text


async def test_memories_survive_a_reopen(mem0_memory_store: StoreUnderTest, tmp_path: Path) -> None:
    memory = await mem0_memory_store.remember("acme", "alice", "Born in Maputo.", metadata={"n": 1})
    store = mem0_memory_store.store
    assert isinstance(store, Mem0MemoryStore)
    await store.close()  # releases the local Qdrant's lock
    reopened = Mem0MemoryStore(tmp_path / "mem0", FakeEmbedder(DIMENSION))
    try:
        assert await reopened.get(MemoryOwner("acme", "alice"), memory.id) == memory
        [hit] = await reopened.search(
            MemoryOwner("acme", "alice"),
            "born",
            FakeEmbedder(DIMENSION).vector("born"),
            5,
            memory.created_at,
        )
        assert hit.id == memory.id
    finally:
        await reopened.close()


async def test_a_collection_of_another_dimension_is_refused(
    mem0_memory_store: StoreUnderTest, tmp_path: Path
) -> None:
    await mem0_memory_store.remember("acme", "alice", "Anything.")
    store = mem0_memory_store.store
    assert isinstance(store, Mem0MemoryStore)
    await store.close()
    other = Mem0MemoryStore(tmp_path / "mem0", FakeEmbedder(DIMENSION // 2))
    try:
        with pytest.raises(MemoryUnavailable, match="mem0_memories"):
            await other.get(MemoryOwner("acme", "alice"), "mem-000000000000000000000000")
        assert (await other.check()).status is Status.UNHEALTHY
    finally:
        await other.close()


async def test_an_unreachable_qdrant_server_is_memory_unavailable(
    tmp_path: Path, outside_network: list[object]
) -> None:
    embedder = FakeEmbedder(DIMENSION)
    store = Mem0MemoryStore(
        tmp_path / "mem0", embedder, qdrant_url=f"http://127.0.0.1:{free_port()}", timeout_s=2
    )
    try:
        memory = Memory(new_memory_id(), "acme", "alice", "Anything.", 0.0)
        with pytest.raises(MemoryUnavailable):
            await store.add(memory, embedder.vector(memory.text))
        assert (await store.check()).status is Status.UNHEALTHY
    finally:
        await store.close()


async def test_mem0_runs_with_its_telemetry_off(
    mem0_memory_store: StoreUnderTest, outside_network: list[object]
) -> None:
    await mem0_memory_store.remember("acme", "alice", "Anything.")
    assert (await mem0_memory_store.store.check()).status is Status.HEALTHY
    from mem0.memory import telemetry

    assert telemetry.MEM0_TELEMETRY is False
    assert telemetry.client_telemetry.posthog is None, "a PostHog client was built"
    assert outside_network == []


# --- extraction on -----------------------------------------------------------------------


def _turn(tenant: str, user_id: str, text: str = TURN, age_s: float = HOURS) -> Memory:
    return Memory(new_memory_id(), tenant, user_id, text, 1_700_000_000.0 - age_s)


async def _store_turn(extracting: ExtractingStore, turn: Memory, facts: list[str] | int) -> None:
    extracting.upstream.replies.append(facts)
    store = extracting.under_test.store
    await store.add(turn, extracting.under_test.embedder.vector(turn.text))


async def _texts(extracting: ExtractingStore, tenant: str, user_id: str) -> Sequence[str]:
    page = await extracting.under_test.store.list_memories(MemoryOwner(tenant, user_id), 20)
    return sorted(m.text for m in page.data)


async def test_a_turn_is_stored_as_its_distilled_facts(
    extracting_mem0_store: ExtractingStore,
) -> None:
    under_test, upstream = extracting_mem0_store.under_test, extracting_mem0_store.upstream
    turn = _turn("acme", "alice")
    await _store_turn(extracting_mem0_store, turn, FACTS)
    page = await under_test.store.list_memories(MemoryOwner("acme", "alice"), 10)
    assert sorted((m.id, m.text) for m in page.data) == [
        (f"{turn.id}.0", "Prefers window seats"),
        (f"{turn.id}.1", "Lives in Lyon"),
    ]
    assert {(m.tenant, m.user_id, m.created_at) for m in page.data} == {
        ("acme", "alice", turn.created_at)
    }
    lyon = next(m for m in page.data if m.text == "Lives in Lyon")
    assert await under_test.store.get(MemoryOwner("acme", "alice"), lyon.id) == lyon
    assert await under_test.store.get(MemoryOwner("acme", "alice"), turn.id) is None, (
        "the turn is not kept"
    )
    best = await under_test.search("acme", "alice", "Which seats do I prefer: window?")
    assert best[0].text == "Prefers window seats"
    best = await under_test.search("acme", "alice", "Where do I live? Lyon?")
    assert best[0].text == "Lives in Lyon"
    [request] = upstream.requests
    assert request["model"] == "fake-model"
    assert request["response_format"] == {"type": "json_object"}
    assert TURN in upstream.prompt(0)


async def test_each_user_distils_and_finds_only_their_own(
    extracting_mem0_store: ExtractingStore,
) -> None:
    under_test, upstream = extracting_mem0_store.under_test, extracting_mem0_store.upstream
    await _store_turn(extracting_mem0_store, _turn("acme", "alice"), FACTS)
    await _store_turn(
        extracting_mem0_store, _turn("acme", "bob", "Aisle seat for me."), ["Prefers aisle seats"]
    )
    await _store_turn(
        extracting_mem0_store, _turn("globex", "alice", "I live in Porto."), ["Lives in Porto"]
    )
    # What Mem0 shows the model of the user's existing memories is the user's own.
    assert "Prefers window seats" not in upstream.prompt(1)
    assert "Prefers window seats" not in upstream.prompt(2)
    assert await _texts(extracting_mem0_store, "acme", "alice") == sorted(FACTS)
    assert await _texts(extracting_mem0_store, "acme", "bob") == ["Prefers aisle seats"]
    assert await _texts(extracting_mem0_store, "globex", "alice") == ["Lives in Porto"]
    hits = await under_test.search("acme", "bob", "window seats Lyon")
    assert [h.text for h in hits] == ["Prefers aisle seats"]
    for hostile in ("*", "alice ", "ALICE"):
        assert await under_test.search("acme", hostile, "window seats") == [], hostile
        assert await _texts(extracting_mem0_store, "acme", hostile) == [], hostile
    assert await under_test.store.forget(MemoryOwner("acme", "alice")) == 2
    assert await _texts(extracting_mem0_store, "acme", "alice") == []
    assert await _texts(extracting_mem0_store, "globex", "alice") == ["Lives in Porto"]


async def test_a_turn_with_nothing_to_remember_stores_nothing(
    extracting_mem0_store: ExtractingStore,
) -> None:
    await _store_turn(extracting_mem0_store, _turn("acme", "alice", "Thanks, bye!"), [])
    assert await _texts(extracting_mem0_store, "acme", "alice") == []


async def test_a_retried_turn_replaces_its_facts(extracting_mem0_store: ExtractingStore) -> None:
    turn = _turn("acme", "alice")
    await _store_turn(extracting_mem0_store, turn, FACTS)
    await _store_turn(extracting_mem0_store, turn, ["Prefers window seats on trains"])
    assert await _texts(extracting_mem0_store, "acme", "alice") == [
        "Prefers window seats on trains"
    ]


async def test_an_upstream_failure_stores_nothing_and_is_memory_unavailable(
    extracting_mem0_store: ExtractingStore,
) -> None:
    turn = _turn("acme", "alice")
    with pytest.raises(MemoryUnavailable):
        await _store_turn(extracting_mem0_store, turn, 503)
    assert await _texts(extracting_mem0_store, "acme", "alice") == []
    await _store_turn(extracting_mem0_store, turn, FACTS)  # the writer's retry
    assert await _texts(extracting_mem0_store, "acme", "alice") == sorted(FACTS)


class _DocumentsDown(FakeEmbedder):
    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        raise EmbeddingUnavailable("the embedder is down")


async def test_facts_that_cannot_be_embedded_are_not_lost_silently(
    tmp_path: Path, outside_network: list[object], extraction_upstream: ExtractionUpstream
) -> None:
    embedder = _DocumentsDown(DIMENSION)
    store = Mem0MemoryStore(
        tmp_path / "mem0",
        embedder,
        extraction=True,
        llm_base_url=extraction_upstream.url,
        llm_model="fake-model",
    )
    try:
        extraction_upstream.replies.append(FACTS)
        turn = _turn("acme", "alice")
        # Mem0 logs a fact it could not embed and goes on: the store says so.
        with pytest.raises(MemoryUnavailable, match="the embedder is down"):
            await store.add(turn, embedder.vector(turn.text))
        assert (await store.list_memories(MemoryOwner("acme", "alice"), 10)).data == []
    finally:
        await store.close()


async def test_forget_leaves_no_trace_in_mem0s_history(
    extracting_mem0_store: ExtractingStore,
) -> None:
    turn = _turn("acme", "alice")
    await _store_turn(extracting_mem0_store, turn, FACTS)
    store = extracting_mem0_store.under_test.store
    fact = f"{turn.id}.0"
    text = "Prefers window seats in the front"
    await store.update(
        MemoryOwner("acme", "alice"),
        fact,
        text,
        extracting_mem0_store.under_test.embedder.vector(text),
    )
    history = extracting_mem0_store.directory / "history.db"
    assert _mentions(history, "Lyon"), "the test sees nothing of Mem0's history"
    assert await store.forget(MemoryOwner("acme", "alice")) == 2
    assert not _mentions(history, "Lyon")
    assert not _mentions(history, "window")


def _mentions(history: Path, word: str) -> bool:
    pattern = f"%{word}%"
    with sqlite3.connect(history) as db:
        (kept,) = db.execute(
            "SELECT (SELECT count(*) FROM history WHERE old_memory LIKE ?1 OR new_memory LIKE ?1)"
            " + (SELECT count(*) FROM messages WHERE content LIKE ?1)",
            (pattern,),
        ).fetchone()
    return bool(kept)

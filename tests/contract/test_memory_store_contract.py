"""The MemoryStore contract, run on every adapter (fake, Qdrant Edge, Qdrant server on
qdrant-client's local mode); then what only the Qdrant adapters can get wrong."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from qdrant_client import AsyncQdrantClient

from adapters.memory.qdrant_memory import QdrantEdgeMemoryStore, QdrantServerMemoryStore
from domain.errors import InvalidRequest, MemoryUnavailable
from domain.health import Status
from domain.memory import DecayPolicy, Memory, MemoryOwner
from tests.conftest import free_port

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import StoreUnderTest

DIMENSION = 64  # the test embedder's (memory_fixtures.DIMENSION)

pytest_plugins = ["tests.contract.memory_fixtures"]
pytestmark = pytest.mark.filterwarnings(
    # qdrant-client's local mode keeps no payload index; a server does.
    "ignore:Payload indexes have no effect:UserWarning"
)

# A blank id cannot reach a store: MemoryOwner refuses it (tests/unit/test_memory_owner.py).
HOSTILE_USER_IDS = ["*", "alice*", "ali%", ".*", "a OR b", '{"$ne": 1}',
                    '{"$regex": ".*"}', "' OR '1'='1", "ALICE", "alice ", "bob\x00"]  # fmt: skip
HOURS = 3600.0


async def test_add_then_search_finds_it(memory_store: StoreUnderTest) -> None:
    await memory_store.remember("acme", "alice", "My sister lives in Porto near the river.")
    memory = await memory_store.remember("acme", "alice", "I prefer window seats on long flights.")
    hits = await memory_store.search("acme", "alice", "Which seats do I prefer on flights?")
    assert hits, "nothing found"
    top = hits[0]
    assert (top.id, top.text, top.timestamp) == (memory.id, memory.text, memory_store.now)
    assert 0 < top.similarity <= 1
    assert top.score == pytest.approx(top.similarity, abs=1e-6), "a new memory does not decay"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_each_user_of_each_tenant_sees_only_their_own(memory_store: StoreUnderTest) -> None:
    text = "My favourite city is Kyoto in autumn."
    mine = await memory_store.remember("acme", "alice", text)
    colleague = await memory_store.remember("acme", "bob", text)
    namesake = await memory_store.remember("globex", "alice", text)  # another person
    for tenant, user_id, own in [("acme", "alice", mine), ("acme", "bob", colleague),
                                 ("globex", "alice", namesake)]:  # fmt: skip
        hits = await memory_store.search(tenant, user_id, "favourite city Kyoto")
        assert [h.id for h in hits] == [own.id]
        page = await memory_store.store.list_memories(MemoryOwner(tenant, user_id), 10)
        assert [m.id for m in page.data] == [own.id]
    store = memory_store.store
    vector = memory_store.embedder.vector("changed")
    assert await store.get(MemoryOwner("acme", "bob"), mine.id) is None
    assert await store.get(MemoryOwner("globex", "alice"), mine.id) is None
    assert await store.update(MemoryOwner("globex", "alice"), mine.id, "changed", vector) is None
    assert not await store.delete(MemoryOwner("acme", "bob"), mine.id)
    assert not await store.delete(MemoryOwner("globex", "alice"), mine.id)
    assert await store.get(MemoryOwner("acme", "alice"), mine.id) == mine


async def test_a_hostile_user_id_is_only_itself(memory_store: StoreUnderTest) -> None:
    text = "The door code of the office is 4711."
    others = [await memory_store.remember("acme", user, text) for user in ("alice", "bob")]
    store = memory_store.store
    for hostile in HOSTILE_USER_IDS:
        assert await memory_store.search("acme", hostile, "door code office") == [], hostile
        assert (await store.list_memories(MemoryOwner("acme", hostile), 10)).data == [], hostile
        for memory in others:
            assert await store.get(MemoryOwner("acme", hostile), memory.id) is None, hostile
            assert not await store.delete(MemoryOwner("acme", hostile), memory.id), hostile
        assert await store.forget(MemoryOwner("acme", hostile)) == 0, hostile
        # The hostile id is a user like any other: it finds its own memory, nobody else's.
        own = await memory_store.remember("acme", hostile, text)
        hits = await memory_store.search("acme", hostile, "door code")
        assert [h.id for h in hits] == [own.id], hostile
        page = await store.list_memories(MemoryOwner("acme", hostile), 10)
        assert [m.id for m in page.data] == [own.id], hostile
        for memory in others:
            hits = await memory_store.search("acme", memory.user_id, "door code")
            assert [h.id for h in hits] == [memory.id], hostile
        assert await store.forget(MemoryOwner("acme", hostile)) == 1, hostile
        for memory in others:
            assert await store.get(MemoryOwner("acme", memory.user_id), memory.id) == memory, (
                hostile
            )


async def test_an_older_memory_counts_less(memory_store: StoreUnderTest) -> None:
    text = "I parked the car on level 3 of the airport garage."
    half_life = memory_store.decay.half_life_s
    new = await memory_store.remember("acme", "alice", text, age_s=HOURS)
    old = await memory_store.remember("acme", "alice", text, age_s=1.5 * half_life)
    hits = await memory_store.search("acme", "alice", "where did I park the car")
    assert [h.id for h in hits] == [new.id, old.id]
    newer, older = hits
    assert older.similarity == pytest.approx(newer.similarity, abs=1e-6)
    assert older.score == pytest.approx(older.similarity * 0.5**1.5, abs=1e-3)
    assert newer.score == pytest.approx(newer.similarity * 0.5 ** (HOURS / half_life), abs=1e-3)
    assert older.timestamp == pytest.approx(old.created_at)
    # The decay chooses what a short list holds, not only its order.
    [best] = await memory_store.search("acme", "alice", "where did I park the car", limit=1)
    assert best.id == new.id


async def test_decay_can_outrank_a_closer_match(memory_store: StoreUnderTest) -> None:
    three_half_lives = 3 * memory_store.decay.half_life_s
    old = await memory_store.remember(
        "acme", "alice", "My dentist is Dr Silva on Rua Augusta.", age_s=three_half_lives
    )
    new = await memory_store.remember("acme", "alice", "My new dentist: Dr Silva moved away.")
    query = "My dentist is Dr Silva on Rua Augusta"
    [best] = await memory_store.search("acme", "alice", query, limit=1)
    assert best.id == new.id
    hits = await memory_store.search("acme", "alice", query, limit=2)
    by_id = {h.id: h for h in hits}
    assert by_id[old.id].similarity > by_id[new.id].similarity
    assert by_id[old.id].score == pytest.approx(by_id[old.id].similarity * 0.125, abs=1e-3)


async def test_a_memory_dated_after_now_does_not_gain(memory_store: StoreUnderTest) -> None:
    # Clock skew between gateway instances: a memory "from the future" counts as new.
    memory = await memory_store.remember(
        "acme", "alice", "Lunch with Priya on Friday.", age_s=-HOURS
    )
    [hit] = await memory_store.search("acme", "alice", "lunch with Priya")
    assert hit.id == memory.id
    assert hit.score == pytest.approx(hit.similarity, abs=1e-6)


FILLERS = ["garden", "kitchen", "window", "garage", "attic", "hallway"]


async def test_an_exact_name_is_found_when_dense_search_misses_it(
    memory_store: StoreUnderTest,
) -> None:
    query = "what did I note about my knee appointment with Okonkwo"
    distractors = [
        f"Note {n} about my knee appointment: what I note about my knee in the {filler}."
        for n, filler in enumerate(FILLERS)
    ]
    for text in distractors:
        await memory_store.remember("acme", "alice", text)
    target = await memory_store.remember("acme", "alice", "Okonkwo said to rest it for 2 weeks.")
    limit = 3
    # The construction holds: by cosine alone, the target is not among the first ``limit``.
    embed = memory_store.embedder.vector
    q = embed(query)
    cosines = sorted(
        (sum(a * b for a, b in zip(q, embed(t), strict=True)), t)
        for t in [*distractors, target.text]
    )
    assert [t for _, t in cosines[-limit:]].count(target.text) == 0
    hits = await memory_store.search("acme", "alice", query, limit=limit)
    assert target.id in [h.id for h in hits]


async def test_limit_is_respected(memory_store: StoreUnderTest) -> None:
    for n in range(12):
        await memory_store.remember(
            "acme", "alice", f"Trip {n}: a train ride to the coast, seat {n}."
        )
    for limit in range(1, 13):
        hits = await memory_store.search("acme", "alice", "train ride to the coast", limit=limit)
        assert len(hits) == limit
        assert len({h.id for h in hits}) == limit
    hits = await memory_store.search("acme", "alice", "train ride to the coast", limit=20)
    assert len(hits) == 12


async def test_list_is_newest_first_and_paged(memory_store: StoreUnderTest) -> None:
    memories = [
        await memory_store.remember(
            "acme", "alice", f"Memory number {n}.", age_s=n * HOURS, metadata={"n": n}
        )
        for n in range(5)
    ]
    # Two made at the same instant: a stable order still, by id.
    twins = [await memory_store.remember("acme", "alice", f"Twin {n}.", age_s=10 * HOURS)
             for n in range(2)]  # fmt: skip
    expected = [*memories, *sorted(twins, key=lambda m: m.id, reverse=True)]
    store = memory_store.store
    seen: list[Memory] = []
    after = None
    for _ in range(4):
        page = await store.list_memories(MemoryOwner("acme", "alice"), 2, after)
        seen.extend(page.data)
        if not page.has_more:
            break
        after = page.data[-1].id
    assert seen == expected
    assert not page.has_more
    assert (await store.list_memories(MemoryOwner("acme", "alice"), 7)).has_more is False
    assert (await store.list_memories(MemoryOwner("acme", "alice"), 6)).has_more is True
    with pytest.raises(InvalidRequest):
        await store.list_memories(MemoryOwner("acme", "alice"), 2, "mem-000000000000000000000000")


async def test_get_returns_the_memory_as_stored(memory_store: StoreUnderTest) -> None:
    memory = await memory_store.remember(
        "acme", "alice", "Allergic to penicillin.", age_s=123.5, metadata={"source": "chat", "n": 1}
    )
    assert await memory_store.store.get(MemoryOwner("acme", "alice"), memory.id) == memory
    assert (
        await memory_store.store.get(MemoryOwner("acme", "alice"), "mem-000000000000000000000000")
        is None
    )


async def test_add_replaces_by_id(memory_store: StoreUnderTest) -> None:
    memory = await memory_store.remember("acme", "alice", "My cat is called Miso.")
    again = Memory(memory.id, "acme", "alice", "My cat is called Tofu.", memory.created_at)
    await memory_store.store.add(again, memory_store.embedder.vector(again.text))
    page = await memory_store.store.list_memories(MemoryOwner("acme", "alice"), 10)
    assert page.data == [again]


async def test_update_changes_what_search_finds(memory_store: StoreUnderTest) -> None:
    memory = await memory_store.remember(
        "acme", "alice", "My gym is in Alfama.", age_s=HOURS, metadata={"k": "v"}
    )
    text = "My gym moved to Belem."
    store = memory_store.store
    updated = await store.update(
        MemoryOwner("acme", "alice"), memory.id, text, memory_store.embedder.vector(text)
    )
    assert updated == Memory(memory.id, "acme", "alice", text, memory.created_at, {"k": "v"})
    assert await store.get(MemoryOwner("acme", "alice"), memory.id) == updated
    for query in ("gym Belem", "gym Alfama"):
        hits = await memory_store.search("acme", "alice", query)
        assert [(h.id, h.text) for h in hits] == [(memory.id, text)]
    missing = "mem-000000000000000000000000"
    assert (
        await store.update(MemoryOwner("acme", "alice"), missing, text, [1.0] * DIMENSION) is None
    )


async def test_delete_removes_one(memory_store: StoreUnderTest) -> None:
    gone = await memory_store.remember("acme", "alice", "The wifi password is on the fridge.")
    kept = await memory_store.remember("acme", "alice", "The spare key is under the mat.")
    store = memory_store.store
    assert await store.delete(MemoryOwner("acme", "alice"), gone.id)
    assert await store.get(MemoryOwner("acme", "alice"), gone.id) is None
    assert [h.id for h in await memory_store.search("acme", "alice", "wifi password")] == [kept.id]
    assert not await store.delete(MemoryOwner("acme", "alice"), gone.id)


async def test_forget_removes_every_memory_of_the_user_only(memory_store: StoreUnderTest) -> None:
    for n in range(3):
        await memory_store.remember("acme", "alice", f"Alice fact {n}: likes tea.")
    bob = await memory_store.remember("acme", "bob", "Bob fact: likes tea.")
    namesake = await memory_store.remember("globex", "alice", "Globex Alice: likes tea.")
    store = memory_store.store
    assert await store.forget(MemoryOwner("acme", "alice")) == 3
    assert (await store.list_memories(MemoryOwner("acme", "alice"), 10)).data == []
    assert await memory_store.search("acme", "alice", "likes tea") == []
    assert await store.forget(MemoryOwner("acme", "alice")) == 0
    assert await store.get(MemoryOwner("acme", "bob"), bob.id) == bob
    assert await store.get(MemoryOwner("globex", "alice"), namesake.id) == namesake


async def test_check_reports_healthy(memory_store: StoreUnderTest) -> None:
    await memory_store.remember("acme", "alice", "Anything.")
    health = await memory_store.store.check()
    assert health.status is Status.HEALTHY


# --- the Qdrant adapters -----------------------------------------------------------------


async def test_edge_memories_survive_a_reopen(
    edge_memory_store: StoreUnderTest, tmp_path: Path
) -> None:
    memory = await edge_memory_store.remember("acme", "alice", "Born in Maputo.")
    store = edge_memory_store.store
    assert isinstance(store, QdrantEdgeMemoryStore)
    await store.close()
    reopened = QdrantEdgeMemoryStore(tmp_path / "memories", DIMENSION)
    try:
        assert await reopened.get(MemoryOwner("acme", "alice"), memory.id) == memory
    finally:
        await reopened.close()


async def test_edge_engine_errors_are_memory_unavailable(edge_memory_store: StoreUnderTest) -> None:
    memory = Memory("mem-x", "acme", "alice", "A vector of the wrong size.", 0.0)
    with pytest.raises(MemoryUnavailable):
        await edge_memory_store.store.add(memory, [1.0] * (DIMENSION + 1))


async def test_an_unreachable_qdrant_server_is_memory_unavailable() -> None:
    client = AsyncQdrantClient(
        url=f"http://127.0.0.1:{free_port()}", timeout=2, check_compatibility=False
    )
    store = QdrantServerMemoryStore(client, DIMENSION, decay=DecayPolicy())
    try:
        with pytest.raises(MemoryUnavailable):
            await store.search(MemoryOwner("acme", "alice"), "anything", [1.0] * DIMENSION, 5, 0.0)
        assert (await store.check()).status is Status.UNHEALTHY
    finally:
        await client.close()


async def test_the_edge_and_the_server_store_score_alike(
    edge_memory_store: StoreUnderTest, server_memory_store: StoreUnderTest
) -> None:
    """The same memories and queries give the same hits with the same similarities and
    decayed scores (qdrant-client's congruence tests are the model). Every memory of the
    user is asked for: which ``limit`` a fusion keeps depends on how the engine breaks
    ties between equal reciprocal ranks, which is not part of the contract."""
    rng = random.Random(7)
    words = ["train", "flight", "hotel", "Lisbon", "Oslo", "dentist", "sister", "birthday",
             "coffee", "jazz", "chess", "bike", "March", "Friday", "Okonkwo", "vegan"]  # fmt: skip
    half_life = edge_memory_store.decay.half_life_s
    for n in range(45):
        text = " ".join(rng.sample(words, 5)) + f" note {n}"
        age = rng.uniform(0, 4 * half_life)
        for under_test in (edge_memory_store, server_memory_store):
            memory = Memory(f"mem-{n:024x}", "acme", f"user-{n % 3}", text, under_test.now - age)
            await under_test.store.add(memory, under_test.embedder.vector(text))
    for query in ("train to Oslo", "my sister's birthday in March", "Okonkwo", "vegan coffee"):
        for user in ("user-0", "user-1", "user-2"):
            edge = await edge_memory_store.search("acme", user, query, limit=20)
            server = await server_memory_store.search("acme", user, query, limit=20)
            assert len(edge) == 15
            # Equal scores (orthogonal memories score 0) may come in either order.
            by_id = {h.id: h for h in server}
            assert by_id.keys() == {h.id for h in edge}, (query, user)
            for hit in edge:
                assert hit.score == pytest.approx(by_id[hit.id].score, abs=1e-5)
                assert hit.similarity == pytest.approx(by_id[hit.id].similarity, abs=1e-5)

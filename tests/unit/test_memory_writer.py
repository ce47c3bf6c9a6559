"""Memories (recall, remember, manage) and the MemoryWriter that drains the queue, against
the fakes: what is queued is stored and acknowledged, and a failure loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from application.memories import MAX_MEMORY_CHARS, Memories, MemoryWriter
from domain.errors import EmbeddingUnavailable, InvalidRequest, MemoryUnavailable, NotFound
from domain.memory import MAX_USER_ID, DecayPolicy, MemoryOwner
from tests.fakes.fake_clock import FakeClock
from tests.fakes.fake_embedder import FakeEmbedder
from tests.fakes.fake_memory_queue import FakeMemoryQueue
from tests.fakes.fake_memory_store import FakeMemoryStore

HALF_LIFE_S = 24 * 3600.0


class FlakyEmbedder(FakeEmbedder):
    """The fake embedder, which also refuses the texts holding ``refuse`` (as a model
    refuses an input it cannot take)."""

    def __init__(self) -> None:
        super().__init__(64)
        self.refuse: str | None = None

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self.refuse is not None and any(self.refuse in text for text in texts):
            raise InvalidRequest("the fake embedder refuses this text")
        return await super().embed_documents(texts)


@pytest.fixture
def store() -> FakeMemoryStore:
    return FakeMemoryStore(DecayPolicy(HALF_LIFE_S))


@pytest.fixture
def queue() -> FakeMemoryQueue:
    return FakeMemoryQueue()


@pytest.fixture
def embedder() -> FlakyEmbedder:
    return FlakyEmbedder()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memories(
    store: FakeMemoryStore, queue: FakeMemoryQueue, embedder: FlakyEmbedder, clock: FakeClock
) -> Memories:
    return Memories(store, queue, embedder, clock)


@pytest.fixture
def writer(store: FakeMemoryStore, queue: FakeMemoryQueue, embedder: FlakyEmbedder) -> MemoryWriter:
    return MemoryWriter(store, queue, embedder, batch=8, wait_s=0.01, backoff_s=0.05)


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


# --- remember and the writer -------------------------------------------------------------


async def test_remember_queues_the_turn_and_returns_its_id_at_once(
    memories: Memories,
    queue: FakeMemoryQueue,
    store: FakeMemoryStore,
    embedder: FlakyEmbedder,
    clock: FakeClock,
) -> None:
    memory_id = await memories.remember(
        "acme", "alice", "User: I am vegetarian.\nAssistant: Noted."
    )
    [turn] = queue.waiting
    assert turn.memory_id == memory_id
    assert memory_id.startswith("mem-")
    assert (turn.tenant, turn.user_id, turn.created_at, turn.attempts) == (
        "acme",
        "alice",
        clock.now(),
        0,
    )
    assert turn.text == "User: I am vegetarian.\nAssistant: Noted."
    assert store.memories == {}
    assert embedder.calls == [], "the request path does not wait for an embedding"


async def test_remember_keeps_at_most_the_maximum_text(
    memories: Memories, queue: FakeMemoryQueue
) -> None:
    await memories.remember("acme", "alice", "x" * (MAX_MEMORY_CHARS + 10))
    assert len(queue.waiting[0].text) == MAX_MEMORY_CHARS


@pytest.mark.parametrize("user_id", ["", "   ", "u" * (MAX_USER_ID + 1)])
async def test_remember_refuses_a_bad_user_id(
    memories: Memories, queue: FakeMemoryQueue, user_id: str
) -> None:
    with pytest.raises(InvalidRequest) as error:
        await memories.remember("acme", user_id, "text")
    assert error.value.param == "user_id"
    assert queue.waiting == []


async def test_remember_reports_a_queue_that_is_down(
    memories: Memories, queue: FakeMemoryQueue
) -> None:
    queue.down = True
    with pytest.raises(MemoryUnavailable):
        await memories.remember("acme", "alice", "text")


async def test_drain_once_stores_and_acknowledges(
    memories: Memories, writer: MemoryWriter, queue: FakeMemoryQueue, store: FakeMemoryStore
) -> None:
    ids = [await memories.remember("acme", "alice", f"User: fact {n}") for n in range(3)]
    assert await writer.drain_once() == 3
    assert {key[2] for key in store.memories} == set(ids)
    assert [t.memory_id for t in queue.acked] == ids
    assert await queue.depth() == 0
    assert writer.stored == 3
    hits = await memories.recall("acme", "alice", "fact 1", 5)
    assert {h.id for h in hits} == set(ids)


async def test_drain_once_on_an_empty_queue_stores_nothing(writer: MemoryWriter) -> None:
    assert await writer.drain_once() == 0


async def test_a_failed_store_puts_the_turn_back_and_a_later_drain_stores_it(
    memories: Memories, writer: MemoryWriter, queue: FakeMemoryQueue, store: FakeMemoryStore
) -> None:
    first = await memories.remember("acme", "alice", "User: first")
    second = await memories.remember("acme", "alice", "User: second")
    store.fail_adds = 1
    assert await writer.drain_once() == 1
    assert [t.memory_id for t in queue.retried] == [first]
    assert queue.retried[0].attempts == 1
    assert await queue.depth() == 1
    assert {key[2] for key in store.memories} == {second}
    assert await writer.drain_once() == 1
    assert {key[2] for key in store.memories} == {first, second}
    assert await queue.depth() == 0


async def test_an_embedder_down_puts_every_turn_back(
    memories: Memories,
    writer: MemoryWriter,
    queue: FakeMemoryQueue,
    embedder: FlakyEmbedder,
    store: FakeMemoryStore,
) -> None:
    for n in range(3):
        await memories.remember("acme", "alice", f"User: fact {n}")
    embedder.failure = EmbeddingUnavailable("the fake embedder is down")
    assert await writer.drain_once() == 0
    assert writer.failures == 3
    assert await queue.depth() == 3
    assert [t.attempts for t in queue.waiting] == [1, 1, 1]
    embedder.failure = None
    assert await writer.drain_once() == 3
    assert len(store.memories) == 3


async def test_flush_empties_the_queue(
    memories: Memories, writer: MemoryWriter, queue: FakeMemoryQueue, store: FakeMemoryStore
) -> None:
    for n in range(50):
        await memories.remember("acme", f"user-{n % 5}", f"User: fact {n}")
    await writer.flush(timeout_s=10)
    assert await queue.depth() == 0
    assert len(store.memories) == 50


async def test_flush_gives_up_at_its_timeout_and_loses_nothing(
    memories: Memories, writer: MemoryWriter, queue: FakeMemoryQueue, store: FakeMemoryStore
) -> None:
    await memories.remember("acme", "alice", "User: fact")
    store.down = True
    with pytest.raises(TimeoutError):
        await writer.flush(timeout_s=0.1)
    assert await queue.depth() == 1


async def test_the_running_writer_stores_what_arrives_once_the_store_is_back(
    memories: Memories, writer: MemoryWriter, queue: FakeMemoryQueue, store: FakeMemoryStore
) -> None:
    store.down = True
    task = asyncio.create_task(writer.run())
    try:
        memory_id = await memories.remember("acme", "alice", "User: fact")
        await asyncio.sleep(0.05)
        store.down = False
        await writer.flush(timeout_s=5)  # alongside the running writer, until both are done
        assert {key[2] for key in store.memories} == {memory_id}
    finally:
        await stopped(task)


async def test_the_running_writer_backs_off_while_the_store_is_down(
    memories: Memories, writer: MemoryWriter, store: FakeMemoryStore
) -> None:
    await memories.remember("acme", "alice", "User: fact")
    store.down = True
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.3)  # backoff_s is 0.05: a handful of attempts at most
    await stopped(task)
    assert store.add_calls <= 20


async def test_a_turn_the_embedder_refuses_does_not_stop_the_writer(
    memories: Memories,
    writer: MemoryWriter,
    embedder: FlakyEmbedder,
    store: FakeMemoryStore,
    queue: FakeMemoryQueue,
) -> None:
    embedder.refuse = "POISON"
    await memories.remember("acme", "alice", "User: POISON")
    task = asyncio.create_task(writer.run())
    try:
        await asyncio.sleep(0.05)
        good = await memories.remember("acme", "alice", "User: a good turn")
        await asyncio.sleep(0.2)
        assert not task.done(), "the writer died"
        assert good in {key[2] for key in store.memories}
    finally:
        await stopped(task)


# --- recall and management ---------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1, 21, 100])
async def test_recall_refuses_a_limit_out_of_range(memories: Memories, limit: int) -> None:
    with pytest.raises(InvalidRequest) as error:
        await memories.recall("acme", "alice", "anything", limit)
    assert error.value.param == "memory_limit"


@pytest.mark.parametrize("limit", [1, 20])
async def test_recall_accepts_the_limits_bounds(memories: Memories, limit: int) -> None:
    await memories.add_now("acme", "alice", "Likes jazz.")
    assert len(await memories.recall("acme", "alice", "jazz", limit)) == 1


@pytest.mark.parametrize("user_id", ["", "   ", "u" * (MAX_USER_ID + 1)])
async def test_recall_refuses_a_bad_user_id(
    memories: Memories, embedder: FlakyEmbedder, user_id: str
) -> None:
    with pytest.raises(InvalidRequest) as error:
        await memories.recall("acme", user_id, "anything", 5)
    assert error.value.param == "user_id"
    assert embedder.calls == []  # refused before the query was embedded


async def test_recall_decays_by_the_clocks_now(memories: Memories, clock: FakeClock) -> None:
    memory = await memories.add_now("acme", "alice", "Plays chess on Sundays.")
    [fresh] = await memories.recall("acme", "alice", "chess on Sundays", 5)
    clock.advance(HALF_LIFE_S)
    [later] = await memories.recall("acme", "alice", "chess on Sundays", 5)
    assert fresh.id == later.id == memory.id
    assert later.similarity == pytest.approx(fresh.similarity)
    assert later.score == pytest.approx(fresh.score / 2)


async def test_recall_with_a_vector_does_not_embed_again(
    memories: Memories, embedder: FlakyEmbedder
) -> None:
    await memories.add_now("acme", "alice", "Likes jazz.")
    before = len(embedder.calls)
    hits = await memories.recall("acme", "alice", "jazz", 5, vector=embedder.vector("jazz"))
    assert len(hits) == 1
    assert len(embedder.calls) == before


async def test_add_now_stores_at_once_with_its_metadata(
    memories: Memories, store: FakeMemoryStore, clock: FakeClock
) -> None:
    memory = await memories.add_now("acme", "alice", "Speaks Portuguese.", {"source": "api"})
    assert memory.metadata == {"source": "api"}
    assert memory.created_at == clock.now()
    assert await memories.get("acme", "alice", memory.id) == memory
    with pytest.raises(InvalidRequest) as error:
        await memories.add_now("acme", "alice", "   ")
    assert error.value.param == "text"


async def test_update_replaces_the_text(memories: Memories) -> None:
    memory = await memories.add_now("acme", "alice", "Lives in Lyon.")
    updated = await memories.update("acme", "alice", memory.id, "Lives in Nantes.")
    assert updated.text == "Lives in Nantes."
    assert (await memories.get("acme", "alice", memory.id)).text == "Lives in Nantes."
    with pytest.raises(InvalidRequest):
        await memories.update("acme", "alice", memory.id, "")


@pytest.mark.parametrize(("tenant", "user_id"), [("acme", "bob"), ("globex", "alice")])
async def test_another_users_memory_is_not_found(
    memories: Memories, tenant: str, user_id: str
) -> None:
    memory = await memories.add_now("acme", "alice", "Private note.")
    with pytest.raises(NotFound):
        await memories.get(tenant, user_id, memory.id)
    with pytest.raises(NotFound):
        await memories.update(tenant, user_id, memory.id, "Overwritten.")
    with pytest.raises(NotFound):
        await memories.delete(tenant, user_id, memory.id)
    assert await memories.get("acme", "alice", memory.id) == memory


async def test_delete_then_get_is_not_found(memories: Memories) -> None:
    memory = await memories.add_now("acme", "alice", "Temporary.")
    await memories.delete("acme", "alice", memory.id)
    with pytest.raises(NotFound):
        await memories.get("acme", "alice", memory.id)
    with pytest.raises(NotFound):
        await memories.delete("acme", "alice", memory.id)


async def test_forget_counts_and_removes_only_that_user(memories: Memories) -> None:
    for n in range(3):
        await memories.add_now("acme", "alice", f"Fact {n}.")
    kept = await memories.add_now("acme", "bob", "Bob's fact.")
    assert await memories.forget("acme", "alice") == 3
    assert (await memories.list("acme", "alice", 10)).data == []
    assert await memories.get("acme", "bob", kept.id) == kept


class GatedEmbedder(FlakyEmbedder):
    """Embeds documents only once ``gate`` opens; ``started`` says a call is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.started.set()
        await self.gate.wait()
        return await super().embed_documents(texts)


async def test_a_writer_stopped_in_the_middle_of_a_batch_leaves_it_to_the_flush(
    store: FakeMemoryStore, queue: FakeMemoryQueue, clock: FakeClock
) -> None:
    """Shutdown cancels the writer while it embeds: the turns it holds go back to the
    queue, so the flush stores them instead of waiting for them until it times out."""
    embedder = GatedEmbedder()
    memories = Memories(store, queue, embedder, clock)
    writer = MemoryWriter(store, queue, embedder, batch=8, wait_s=0.01, backoff_s=0.05)
    memory_id = await memories.remember("acme", "alice", "User: my locker is 42.")
    task = asyncio.create_task(writer.run())
    await asyncio.wait_for(embedder.started.wait(), 1)

    await stopped(task)
    embedder.gate.set()
    await writer.flush(timeout_s=1)

    assert await queue.depth() == 0
    assert await store.get(MemoryOwner("acme", "alice"), memory_id) is not None

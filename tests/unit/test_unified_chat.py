"""UnifiedChat against fakes: retrieval under a budget, degradation, memory round trip."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from application.knowledge_base import KnowledgeBase, NewDocument
from application.memories import Memories, MemoryWriter
from application.unified_chat import UnifiedChat, UnifiedChatRequest
from domain.errors import EmbeddingUnavailable, InvalidRequest, UpstreamUnavailable
from domain.memory import MemoryHit
from domain.principal import Principal, Tier
from gateway.container import Container
from gateway.settings import Settings
from ports.memory_store import MemoryStore
from tests.fakes.fake_chat_model import FakeChatModel
from tests.fakes.fake_clock import FakeClock
from tests.fakes.fake_document_index import FakeDocumentIndex
from tests.fakes.fake_embedder import FakeEmbedder
from tests.fakes.fake_memory_queue import FakeMemoryQueue
from tests.fakes.fake_memory_store import FakeMemoryStore

ALICE = Principal("key_a", Tier.DEVELOPER, "acme")
OTHER_TENANT = Principal("key_b", Tier.DEVELOPER, "globex")


class SlowMemoryStore(FakeMemoryStore):
    delay_s = 0.0

    async def search(self, *args: Any, **kwargs: Any) -> list[MemoryHit]:
        await asyncio.sleep(self.delay_s)
        return await super().search(*args, **kwargs)


class World:
    """The real composition root's use-cases, each port served by a fake."""

    def __init__(self, tmp_path: Path, store: MemoryStore | None = None, **settings: Any) -> None:
        self.clock = FakeClock()
        self.model = FakeChatModel(models=("fake-model",))
        self.embedder = FakeEmbedder()
        self.index = FakeDocumentIndex()
        self.store = store or SlowMemoryStore()
        self.queue = FakeMemoryQueue()
        self.container = Container(
            settings=Settings(
                data_dir=str(tmp_path), default_model="fake-model", chat_budget_ms=3000,
                retrieval_share=0.25, **{"recent_turns": 0, **settings},
            )
        )  # fmt: skip
        self.container.infrastructure.clock.override(self.clock)
        self.container.infrastructure.http_client.override(None)  # the fakes need none
        self.container.inference.chat_models.override([self.model])
        self.container.inference.embedder.override(self.embedder)
        self.container.storage.document_index.override(self.index)
        self.container.storage.memory_store.override(self.store)
        self.container.storage.memory_queue.override(self.queue)
        self.knowledge_base: KnowledgeBase = self.container.use_cases.knowledge_base()
        self.memories: Memories = self.container.use_cases.memories()
        self.chat: UnifiedChat = self.container.use_cases.unified_chat()
        self.writer = MemoryWriter(self.store, self.queue, self.embedder, wait_s=0)

    def prompt(self) -> str:
        """Everything the model was last asked, as one text."""
        return json.dumps(self.model.requests[-1]["messages"])


@pytest.fixture
async def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    await w.knowledge_base.ingest(
        ALICE,
        [
            NewDocument("returns.md", "Orders can be returned within 30 days of delivery."),
            NewDocument("warranty.md", "Product ZX-4471-Q has a lifetime warranty."),
        ],
    )
    return w


def ask(text: str, **params: Any) -> UnifiedChatRequest:
    return UnifiedChatRequest(messages=[("user", text)], max_tokens=50, **params)


async def test_without_user_id_no_memory_is_read_or_written(world: World) -> None:
    answer = await world.chat.answer(ALICE, ask("Can orders be returned?"))

    assert answer.content
    assert answer.content.startswith("echo:")
    assert answer.metadata.memory_stored is False
    assert answer.metadata.memory_id is None
    assert answer.metadata.memories_retrieved == 0
    assert await world.queue.depth() == 0
    assert answer.metadata.rag_documents_retrieved >= 1
    # Not silent: the answer says why memory was off.
    assert [d.stage for d in answer.metadata.degraded] == ["memory"]
    assert "user_id" in answer.metadata.degraded[0].reason
    assert answer.id.startswith("unified-")


async def test_memory_turned_off_without_user_id_is_not_degraded(world: World) -> None:
    answer = await world.chat.answer(
        ALICE, ask("Can orders be returned?", use_memory=False, store_memory=False)
    )

    assert answer.metadata.degraded == []


async def test_the_query_is_embedded_once_for_both_retrievals(world: World) -> None:
    before = len(world.embedder.calls)
    await world.chat.answer(ALICE, ask("returned within days", user_id="alice"))
    assert world.embedder.calls[before:] == [["returned within days"]]


async def test_retrieved_context_reaches_the_model_as_a_system_message(world: World) -> None:
    await world.chat.answer(ALICE, ask("Does ZX-4471-Q have a warranty?", rag_k=1))
    messages = world.model.requests[-1]["messages"]
    assert messages[0]["role"] == "system"
    assert "lifetime warranty" in messages[0]["content"]
    assert "<documents>" in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "Does ZX-4471-Q have a warranty?"}


async def test_memory_round_trip_per_user_and_tenant(world: World) -> None:
    first = await world.chat.answer(ALICE, ask("I live in Lyon and love cycling", user_id="alice"))
    assert first.metadata.memory_stored is True
    assert first.metadata.memory_id is not None
    assert await world.writer.drain_once() == 1

    later = await world.chat.answer(ALICE, ask("Where do I live?", user_id="alice", use_rag=False))
    assert [m.id for m in later.context.memories][:1] == [first.metadata.memory_id]
    assert "Lyon" in world.prompt()

    stranger = await world.chat.answer(ALICE, ask("Where do I live?", user_id="bob", use_rag=False))
    assert stranger.context.memories == ()
    elsewhere = await world.chat.answer(
        OTHER_TENANT, ask("Where do I live?", user_id="alice", use_rag=False)
    )
    assert elsewhere.context.memories == ()


async def test_flags_turn_retrieval_and_storage_off(world: World) -> None:
    answer = await world.chat.answer(
        ALICE, ask("hello", user_id="alice", use_memory=False, use_rag=False, store_memory=False)
    )
    assert answer.context.memories == ()
    assert answer.context.documents == ()
    assert answer.metadata.memory_stored is False
    assert await world.queue.depth() == 0
    assert world.embedder.calls == [["Orders can be returned within 30 days of delivery."],
                                    ["Product ZX-4471-Q has a lifetime warranty."]]  # fmt: skip


async def test_memory_store_down_degrades_memory_only(world: World) -> None:
    world.store.down = True
    answer = await world.chat.answer(ALICE, ask("Can orders be returned?", user_id="alice"))
    assert [d.stage for d in answer.metadata.degraded] == ["memory_retrieval"]
    assert answer.metadata.rag_documents_retrieved >= 1
    assert answer.content


async def test_document_index_down_degrades_rag_only(world: World) -> None:
    world.index.down = True
    answer = await world.chat.answer(ALICE, ask("Can orders be returned?", user_id="alice"))
    assert [d.stage for d in answer.metadata.degraded] == ["rag_retrieval"]
    assert answer.content


async def test_embedder_down_skips_both_retrievals_and_still_answers(world: World) -> None:
    world.embedder.failure = EmbeddingUnavailable("embedder down")
    answer = await world.chat.answer(ALICE, ask("Can orders be returned?", user_id="alice"))
    stages = [d.stage for d in answer.metadata.degraded]
    assert stages == ["embedding", "memory_retrieval", "rag_retrieval"]
    assert answer.context.documents == ()
    assert answer.content


async def test_a_stage_missing_its_deadline_is_cancelled_and_named(world: World) -> None:
    world.store.delay_s = 5.0
    answer = await world.chat.answer(
        ALICE, ask("Can orders be returned?", user_id="alice", latency_budget_ms=400)
    )
    degraded = {d.stage: d.reason for d in answer.metadata.degraded}
    assert "deadline" in degraded["memory_retrieval"]
    assert "rag_retrieval" not in degraded
    assert answer.metadata.rag_documents_retrieved >= 1
    assert answer.content


async def test_queue_down_reports_memory_not_stored(world: World) -> None:
    world.queue.down = True
    answer = await world.chat.answer(ALICE, ask("remember this", user_id="alice"))
    assert answer.metadata.memory_stored is False
    assert answer.metadata.memory_id is None
    assert [d.stage for d in answer.metadata.degraded] == ["memory_storage"]


@pytest.mark.parametrize("budget", [10, 1_000_000])
async def test_budget_out_of_range_names_the_field(world: World, budget: float) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await world.chat.answer(ALICE, ask("hi", latency_budget_ms=budget))
    assert raised.value.param == "latency_budget_ms"


async def test_an_upstream_failure_stores_nothing(world: World) -> None:
    world.model.failure = UpstreamUnavailable("down")
    with pytest.raises(UpstreamUnavailable):
        await world.chat.answer(ALICE, ask("hi", user_id="alice"))
    assert await world.queue.depth() == 0


async def test_stream_context_then_chunks_then_metadata(world: World) -> None:
    stream = await world.chat.stream(ALICE, ask("Can orders be returned?", user_id="alice"))
    assert stream.context.documents
    chunks = [json.loads(c) async for c in stream.chunks()]
    assert all(c["choices"] for c in chunks), "the usage-only chunk is not relayed"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    metadata, usage = await stream.finish()
    assert text.startswith("echo:")
    assert usage is not None
    assert usage.completion_tokens == len(text.split())
    assert metadata.memory_stored is True
    assert metadata.generation_ms >= 0
    assert await world.writer.drain_once() == 1
    stored = await world.memories.list("acme", "alice", 10)
    assert text in stored.data[0].text


async def test_a_follow_up_sees_the_recent_turn_before_it_is_stored(tmp_path: Path) -> None:
    w = World(tmp_path, recent_turns=6)
    await w.chat.answer(ALICE, ask("My booking code is QX-91", user_id="alice", use_rag=False))
    # The writer has not run: long-term memory has nothing yet.
    follow_up = await w.chat.answer(ALICE, ask("What is my code?", user_id="alice", use_rag=False))
    assert follow_up.context.memories == ()
    assert follow_up.context.recent
    assert "QX-91" in follow_up.context.recent[0]
    assert "QX-91" in w.prompt()

    # The writer is not running here: forgetting waits briefly for the queue, then goes on.
    assert await w.memories.forget("acme", "alice", drain_s=0.1) == 0
    after = await w.chat.answer(ALICE, ask("What is my code?", user_id="alice", use_rag=False))
    assert "QX-91" not in w.prompt()
    assert after.context.recent == () or "QX-91" not in " ".join(after.context.recent)


# --- warm-up at start ---------------------------------------------------------------------


async def test_warm_up_runs_the_retrieval_path_once_without_storing_anything(
    world: World,
) -> None:
    calls_before = len(world.embedder.calls)

    report = await world.chat.warm_up()

    assert len(world.embedder.calls) == calls_before + 1  # the query embedded once
    assert set(report.timings_ms) == {"embedding", "memory_retrieval", "rag_retrieval"}
    assert report.degraded == []
    assert await world.queue.depth() == 0
    assert world.store.adds == 0
    assert world.model.requests == []  # no generation: the upstream is not asked


async def test_warm_up_reports_a_backend_down_instead_of_raising(world: World) -> None:
    world.index.down = True
    world.store.down = True

    report = await world.chat.warm_up()

    assert {d.stage for d in report.degraded} == {"memory_retrieval", "rag_retrieval"}


async def test_warm_up_reports_an_embedder_down_instead_of_raising(world: World) -> None:
    world.embedder.failure = EmbeddingUnavailable("no model")

    report = await world.chat.warm_up()

    assert report.degraded[0].stage == "embedding"


async def test_a_stage_not_asked_for_reports_no_time(world: World) -> None:
    answer = await world.chat.answer(ALICE, ask("Can orders be returned?", use_rag=False))

    assert answer.metadata.rag_retrieval_ms == 0.0
    assert answer.metadata.memory_retrieval_ms == 0.0  # no user_id: no memory either
    assert answer.metadata.embedding_ms == 0.0  # nothing to retrieve: nothing embedded

    takes(world.clock, world.index, "search", 0.012)
    with_rag = await world.chat.answer(ALICE, ask("Can orders be returned?"))
    assert with_rag.metadata.rag_retrieval_ms == 12.0
    assert with_rag.metadata.memory_retrieval_ms == 0.0


def takes(clock: FakeClock, target: object, method: str, seconds: float) -> None:
    """``target.method`` now takes ``seconds`` on the fake clock."""
    original = getattr(target, method)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        clock.advance(seconds)
        return await original(*args, **kwargs)

    setattr(target, method, timed)


async def test_stage_times_are_read_on_the_injected_clock(world: World) -> None:
    """Each stage is timed on the Clock port: with a clock moved by hand the metadata
    holds exactly the time each stage took on it, whatever the machine's speed."""
    takes(world.clock, world.embedder, "embed_query", 0.040)
    takes(world.clock, world.store, "search", 0.025)
    takes(world.clock, world.model, "complete", 0.500)
    # Documents are not asked for: memory and documents are retrieved side by side,
    # and one clock moved by both would give each stage the other's time too.
    alone = ask("Can orders be returned?", user_id="alice", use_rag=False)

    metadata = (await world.chat.answer(ALICE, alone)).metadata

    assert metadata.embedding_ms == 40.0
    assert metadata.memory_retrieval_ms == 25.0
    assert metadata.generation_ms == 500.0
    assert metadata.total_latency_ms == 565.0

    takes(world.clock, world.model, "stream", 0.200)
    stream = await world.chat.stream(ALICE, alone)
    assert [chunk async for chunk in stream.chunks()]
    streamed, _ = await stream.finish()
    assert streamed.generation_ms == 200.0


class FixedMemoryStore(FakeMemoryStore):
    """Recalls the same hits whatever the query."""

    def __init__(self, hits: list[MemoryHit]) -> None:
        super().__init__()
        self.hits = hits

    async def search(self, *args: Any, **kwargs: Any) -> list[MemoryHit]:
        return list(self.hits)


async def test_memories_under_the_similarity_floor_stay_out_of_the_prompt(
    tmp_path: Path,
) -> None:
    now = FakeClock().now()
    world = World(
        tmp_path,
        FixedMemoryStore([
            MemoryHit("m1", "User: I keep bees", score=0.5, similarity=0.5, timestamp=now),
            MemoryHit("m2", "User: I hate jazz", score=0.3, similarity=0.05, timestamp=now),
            MemoryHit("m3", "User: I sail boats", score=-0.2, similarity=-0.2, timestamp=now),
        ]),
    )  # fmt: skip
    chat = world.chat

    answer = await chat.answer(ALICE, ask("Tell me about bees", user_id="alice", use_rag=False))

    assert [m.id for m in answer.context.memories] == ["m1"]
    assert "bees" in world.prompt()
    assert "jazz" not in world.prompt()
    assert "boats" not in world.prompt()


@pytest.mark.parametrize("streamed", [False, True], ids=["answer", "stream"])
async def test_an_answer_without_finish_reason_is_not_remembered(
    world: World, streamed: bool
) -> None:
    """An answer cut short (no finish_reason) is no turn to remember."""
    answer = world.model._answer

    def cut(body: Any) -> Any:
        words, _, usage = answer(body)
        return words, None, usage

    world.model._answer = cut  # type: ignore[method-assign]
    if streamed:
        stream = await world.chat.stream(ALICE, ask("hi", user_id="alice"))
        assert [c async for c in stream.chunks()]
        metadata, _ = await stream.finish()
    else:
        metadata = (await world.chat.answer(ALICE, ask("hi", user_id="alice"))).metadata
    assert metadata.memory_stored is False
    assert await world.queue.depth() == 0


async def test_passages_are_numbered_and_the_model_is_asked_to_cite_them(world: World) -> None:
    await world.chat.answer(ALICE, ask("Can orders be returned?", rag_k=2))
    prompt = world.prompt()
    assert "[1] (source: " in prompt
    assert "[2] (source: " in prompt
    assert "cite each one you use by its number" in prompt


async def test_citations_map_the_answers_numbers_to_its_passages(world: World) -> None:
    # The fake model echoes the question: the answer cites [2] then [1], and a [7] no
    # passage has.
    answer = await world.chat.answer(
        ALICE, ask("returns warranty [2] then [1, 7] and [2]", rag_k=2)
    )
    passages = answer.context.documents
    assert len(passages) == 2
    cited = [(c.number, c.passage) for c in answer.metadata.citations]
    assert cited == [(2, passages[1]), (1, passages[0])]


async def test_an_answer_citing_nothing_has_no_citations(world: World) -> None:
    answer = await world.chat.answer(ALICE, ask("Can orders be returned?", rag_k=2))
    assert answer.context.documents
    assert answer.metadata.citations == []


async def test_a_streamed_answer_has_its_citations_in_the_metadata(world: World) -> None:
    stream = await world.chat.stream(ALICE, ask("returns warranty, see [1]", rag_k=2))
    _ = [c async for c in stream.chunks()]
    metadata, _usage = await stream.finish()
    assert [(c.number, c.passage) for c in metadata.citations] == [(1, stream.context.documents[0])]

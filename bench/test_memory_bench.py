"""Per-user memory, measured through the adapters and the writer the gateway runs:

* search on the native Qdrant Edge store (``QdrantEdgeMemoryStore``): 10,000 memories of
  one tenant spread over 1,000 users, one user's memories searched (hybrid, decayed,
  top 5) by a precomputed 384-dimension query vector: no query embedding in it;
* ``put`` on the request path: the in-process queue and the Redis Streams queue on a
  private redis-server (loopback);
* the background writer's throughput (``MemoryWriter`` draining an in-process queue into
  the Edge store), with the embedded ONNX embedder and with a zero-cost one, to separate
  the cost of embedding from the cost of storing.

    .venv/bin/python -m pytest bench/test_memory_bench.py --benchmark-only

Not part of the suite (``testpaths`` is ``tests``); it asserts nothing about time, it
reports. Targets: search p95 <= 5 ms; ``put`` p95 <= 1 ms."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder
from adapters.memory.in_process_queue import InProcessMemoryQueue
from adapters.memory.qdrant_memory import QdrantEdgeMemoryStore
from adapters.memory.redis_stream_queue import RedisStreamMemoryQueue
from application.memories import MemoryWriter
from bench.test_hot_path_bench import run_now
from bench.test_index_bench import DIMENSION, unit_vectors
from domain.health import ServiceHealth, Status
from domain.memory import Memory, MemoryOwner, MemoryTurn, new_memory_id

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer

pytest_plugins = ["tests.contract.memory_fixtures"]

TENANT = "bench"
USERS = 1_000
MEMORIES = 10_000
NOW = 1_700_000_000.0
DAY = 86_400.0


# Common English words, most frequent first: about one WordPiece token each, as in a chat
# (the index benchmark's made-up words cost the embedder three tokens each).
COMMON_WORDS = """
the of and to a in is you that it he was for on are as with his they I at be this
have from or one had by word but not what all were we when your can said there use
an each which she do how their if will up other about out many then them these so
some her would make like him into time has look two more write go see number no way
could people my than first water been call who oil its now find long down day did
get come made may part coffee tea city trip flight hotel booking password account
reset order refund invoice meeting friday monday project deadline report garden dog
"""
WORDS = COMMON_WORDS.split()


def sentence(rng: np.random.Generator, words: int) -> str:
    """Zipf-distributed words: a few common, most rare."""
    ranks = np.minimum(rng.zipf(1.3, size=words), len(WORDS)) - 1
    return " ".join(WORDS[r] for r in ranks)


def user(n: int) -> str:
    return f"user-{n:04d}"


def chat_turn(rng: np.random.Generator, n: int) -> MemoryTurn:
    """A stored chat turn: a question and an answer, ~80 words."""
    text = f"User: {sentence(rng, 20)}\nAssistant: {sentence(rng, 60)}"
    return MemoryTurn(new_memory_id(), TENANT, user(n % USERS), text, NOW)


def report(benchmark: BenchmarkFixture, label: str, calls: str) -> None:
    """p50 and p95 of the rounds, into ``extra_info`` and printed."""
    data = sorted(benchmark.stats.stats.sorted_data)
    p50 = statistics.median(data) * 1000
    p95 = data[int(0.95 * (len(data) - 1))] * 1000
    benchmark.extra_info.update({"p50_ms": round(p50, 4), "p95_ms": round(p95, 4)})
    print(f"\n{label}: p50 {p50:.3f} ms, p95 {p95:.3f} ms over {len(data)} {calls}")


# --- search -------------------------------------------------------------------------------


@dataclass
class Filled:
    store: QdrantEdgeMemoryStore
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """10,000 memories, 10 per user, dated over the last 30 days; added one by one as
    the writer adds them (the store is never optimised, as in the gateway)."""
    rng = np.random.default_rng(4)
    loop = asyncio.new_event_loop()
    store = QdrantEdgeMemoryStore(tmp_path_factory.mktemp("memories"), DIMENSION)
    vectors = unit_vectors(rng, MEMORIES).tolist()

    async def fill() -> None:
        for n, vector in enumerate(vectors):
            created_at = NOW - float(rng.uniform(0, 30 * DAY))
            memory = Memory(new_memory_id(), TENANT, user(n % USERS), sentence(rng, 40), created_at)
            await store.add(memory, vector)

    loop.run_until_complete(store.check())  # the shard's creation is not filling
    started = time.perf_counter()
    loop.run_until_complete(fill())
    seconds = time.perf_counter() - started
    print(f"\n[{MEMORIES} memories, {USERS} users] added in {seconds:.1f} s")
    yield Filled(store, loop)
    loop.run_until_complete(store.close())
    loop.close()


def test_search_one_users_memories(benchmark: BenchmarkFixture, filled: Filled) -> None:
    rng = np.random.default_rng(11)
    queries = [
        (user(int(rng.integers(USERS))), sentence(rng, 8), vector)
        for vector in unit_vectors(rng, 64).tolist()
    ]
    turn = iter(range(10**9))

    def search() -> None:
        user_id, text, vector = queries[next(turn) % len(queries)]
        hits = filled.loop.run_until_complete(
            filled.store.search(MemoryOwner(TENANT, user_id), text, vector, 5, NOW)
        )
        assert len(hits) == 5

    benchmark.pedantic(search, rounds=1000, warmup_rounds=50, iterations=1)
    report(benchmark, f"memory search, top 5 of one user's 10 among {MEMORIES}", "searches")


# --- put on the request path --------------------------------------------------------------


def test_put_in_process(benchmark: BenchmarkFixture) -> None:
    """``put`` never suspends here: timed without an event loop, as the hot path's
    benchmarks are."""
    rng = np.random.default_rng(5)
    queue = InProcessMemoryQueue(maxsize=10**7)
    turns = [chat_turn(rng, n) for n in range(256)]
    turn = iter(range(10**9))

    def put() -> None:
        run_now(queue.put(turns[next(turn) % len(turns)]))

    benchmark.pedantic(put, rounds=20_000, warmup_rounds=200, iterations=1)
    report(benchmark, "put, in-process queue", "puts")


def test_put_redis_stream(benchmark: BenchmarkFixture, redis_server: RedisServer) -> None:
    """XADD on a private redis-server over loopback, through the adapter's retry layer;
    the event loop's own cost per call (``run_until_complete``) is in the figure."""
    rng = np.random.default_rng(6)
    loop = asyncio.new_event_loop()
    client = redis_server.client()
    queue = RedisStreamMemoryQueue(client, stream="bench:memory:turns")
    turns = [chat_turn(rng, n) for n in range(256)]
    turn = iter(range(10**9))

    def put() -> None:
        loop.run_until_complete(queue.put(turns[next(turn) % len(turns)]))

    try:
        benchmark.pedantic(put, rounds=5_000, warmup_rounds=200, iterations=1)
        report(benchmark, "put, Redis stream queue", "puts")
    finally:
        loop.run_until_complete(client.delete(queue.stream))
        loop.run_until_complete(client.aclose())
        loop.close()


# --- the writer's throughput --------------------------------------------------------------


class PrecomputedEmbedder:
    """Returns ready unit vectors at no cost: what is left is the writer and the store."""

    model = "precomputed"
    dimension = DIMENSION

    def __init__(self, seed: int = 9) -> None:
        self._vectors = unit_vectors(np.random.default_rng(seed), 1024).tolist()

    async def embed_query(self, text: str) -> list[float]:
        return list(self._vectors[len(text) % len(self._vectors)])

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vectors[i % len(self._vectors)] for i in range(len(texts))]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def check(self) -> ServiceHealth:
        return ServiceHealth("embeddings", Status.HEALTHY, 0.0)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def onnx_embedder(runner: asyncio.Runner) -> Iterator[OnnxMiniLMEmbedder]:
    embedder = OnnxMiniLMEmbedder()  # the gateway's default: one intra-op thread
    runner.run(embedder.embed_query("warm up"))  # the session loads on first use
    yield embedder
    embedder.close()


@pytest.mark.parametrize(
    ("embedding", "turns"), [("onnx", 128), ("zero-cost", 2048)], ids=["onnx", "zero-cost"]
)
def test_writer_throughput(
    benchmark: BenchmarkFixture,
    runner: asyncio.Runner,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    embedding: str,
    turns: int,
) -> None:
    """Seconds for ``MemoryWriter`` (batches of 32, as in the gateway) to store ``turns``
    queued turns of ~80 words into a fresh Edge store."""
    embedder = (
        request.getfixturevalue("onnx_embedder") if embedding == "onnx" else PrecomputedEmbedder()
    )
    rng = np.random.default_rng(8)
    queued = [chat_turn(rng, n) for n in range(turns)]
    stores: list[QdrantEdgeMemoryStore] = []

    def fresh_writer() -> tuple[tuple[MemoryWriter, InProcessMemoryQueue], dict[str, Any]]:
        store = QdrantEdgeMemoryStore(tmp_path / f"writer-{len(stores)}", DIMENSION)
        runner.run(store.check())  # created before the clock starts
        stores.append(store)
        queue = InProcessMemoryQueue(maxsize=turns)
        for t in queued:
            run_now(queue.put(t))
        return (MemoryWriter(store, queue, embedder, wait_s=0.0), queue), {}

    async def drain(writer: MemoryWriter, queue: InProcessMemoryQueue) -> None:
        while await queue.depth():
            await writer.drain_once()
        assert writer.stored == turns

    benchmark.pedantic(
        lambda writer, queue: runner.run(drain(writer, queue)),
        setup=fresh_writer,
        rounds=3,
        iterations=1,
    )
    rates = [turns / seconds for seconds in benchmark.stats.stats.sorted_data]
    benchmark.extra_info["turns_per_s"] = round(statistics.median(rates))
    tokens = statistics.mean(embedder.count_tokens(t.text) for t in queued)
    benchmark.extra_info["tokens_per_turn"] = round(tokens)
    print(
        f"\nwriter, {embedding} embedder: {statistics.median(rates):.0f} turns/s (median of 3 x "
        f"{turns} turns of ~{tokens:.0f} tokens)"
    )
    for store in stores:
        runner.run(store.close())

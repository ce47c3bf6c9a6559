"""Qdrant Edge as the embedded document index, measured through ``QdrantEdgeIndex``:
search latency at 10k and 100k chunks (384 dimensions, after ``optimize()``) and
ingestion throughput through ``replace`` (vectors given: the embedder's time is not in
it, BM25 encoding is).

    .venv/bin/python -m pytest bench/test_index_bench.py -s

Not part of the suite (``testpaths`` is ``tests``); it asserts nothing about time, it
reports. Targets: search p95 <= 5 ms at 100k chunks; >= 300 chunks/s of ~200 tokens."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.vector.qdrant_index import QdrantEdgeIndex
from domain.documents import (
    Chunk,
    Document,
    Scope,
    SearchMode,
    SearchQuery,
    chunk_id_for,
    document_id_for,
)

DIMENSION = 384
CHUNK_WORDS = 200
CHUNKS_PER_DOCUMENT = 100
VOCABULARY = [f"w{n:04d}" for n in range(5000)]
TENANT = "bench"


@dataclass
class Corpus:
    texts: list[str]
    vectors: np.ndarray

    def documents(self, prefix: str) -> Iterator[tuple[Document, list[Chunk], list[list[float]]]]:
        for start in range(0, len(self.texts), CHUNKS_PER_DOCUMENT):
            source = f"{prefix}-{start // CHUNKS_PER_DOCUMENT}.md"
            document_id = document_id_for(TENANT, Scope.TENANT, source)
            texts = self.texts[start : start + CHUNKS_PER_DOCUMENT]
            document = Document(document_id, TENANT, source, "", metadata={"batch": prefix})
            chunks = [
                Chunk(chunk_id_for(document_id, i), document_id, i, text)
                for i, text in enumerate(texts)
            ]
            vectors = self.vectors[start : start + len(texts)].tolist()
            yield document, chunks, vectors


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def synthetic_corpus(count: int, seed: int) -> Corpus:
    """Zipf-distributed words (a few common, most rare), ~200 per chunk."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.3, size=(count, CHUNK_WORDS)), len(VOCABULARY)) - 1
    texts = [" ".join(VOCABULARY[r] for r in row) for row in ranks]
    return Corpus(texts, unit_vectors(rng, count))


async def ingest(index: QdrantEdgeIndex, corpus: Corpus, prefix: str) -> float:
    """Seconds to ``replace`` the whole corpus, document by document."""
    started = time.perf_counter()
    for document, chunks, vectors in corpus.documents(prefix):
        await index.replace(document, chunks, vectors)
    return time.perf_counter() - started


@dataclass
class Built:
    index: QdrantEdgeIndex
    loop: asyncio.AbstractEventLoop
    size: int


@pytest.fixture(scope="module", params=[10_000, 100_000], ids=["10k", "100k"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    size: int = request.param
    loop = asyncio.new_event_loop()
    index = QdrantEdgeIndex(tmp_path_factory.mktemp(f"edge-{size}"), DIMENSION)
    corpus = synthetic_corpus(size, seed=size)
    loop.run_until_complete(index.check())  # the shard's creation is not ingestion
    seconds = loop.run_until_complete(ingest(index, corpus, "bulk"))
    started = time.perf_counter()
    loop.run_until_complete(index.optimize())
    optimized = time.perf_counter() - started
    print(
        f"\n[{size} chunks] built in {seconds:.1f} s ({size / seconds:.0f} chunks/s), "
        f"optimize() {optimized:.1f} s"
    )
    yield Built(index, loop, size)
    loop.run_until_complete(index.close())
    loop.close()


def report(benchmark: Any, label: str) -> None:
    data = sorted(benchmark.stats.stats.sorted_data)
    p50 = statistics.median(data) * 1000
    p95 = data[int(0.95 * (len(data) - 1))] * 1000
    benchmark.extra_info.update({"p50_ms": round(p50, 3), "p95_ms": round(p95, 3)})
    print(f"\n{label}: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {len(data)} searches")


@pytest.mark.parametrize("mode", [SearchMode.HYBRID, SearchMode.DENSE], ids=["hybrid", "dense"])
def test_search_latency(benchmark: Any, built: Built, mode: SearchMode) -> None:
    rng = np.random.default_rng(7)
    queries = [
        SearchQuery(
            TENANT,
            " ".join(VOCABULARY[r] for r in rng.integers(10, 2000, size=4)),
            tuple(vector),
            k=5,
            mode=mode,
        )
        for vector in unit_vectors(rng, 64).tolist()
    ]
    turn = iter(range(10**9))

    def search() -> None:
        query = queries[next(turn) % len(queries)]
        assert len(built.loop.run_until_complete(built.index.search(query))) == 5

    benchmark.pedantic(search, rounds=500, warmup_rounds=20, iterations=1)
    report(benchmark, f"{mode.value} top-5 at {built.size} chunks")


def test_ingest_throughput(benchmark: Any, tmp_path: Path) -> None:
    corpus = synthetic_corpus(5_000, seed=1)
    loop = asyncio.new_event_loop()
    indexes: list[QdrantEdgeIndex] = []

    def fresh_index() -> tuple[tuple[QdrantEdgeIndex], dict[str, Any]]:
        index = QdrantEdgeIndex(tmp_path / f"ingest-{len(indexes)}", DIMENSION)
        loop.run_until_complete(index.check())  # created before the clock starts
        indexes.append(index)
        return (index,), {}

    def run(index: QdrantEdgeIndex) -> float:
        return loop.run_until_complete(ingest(index, corpus, "ingest"))

    benchmark.pedantic(run, setup=fresh_index, rounds=3, iterations=1)
    rates = [len(corpus.texts) / s for s in benchmark.stats.stats.sorted_data]
    benchmark.extra_info["chunks_per_s"] = round(statistics.median(rates))
    words = statistics.mean(len(t.split()) for t in corpus.texts)
    print(
        f"\ningest: {statistics.median(rates):.0f} chunks/s (median of 3 x {len(corpus.texts)} "
        f"chunks of {words:.0f} words, in documents of {CHUNKS_PER_DOCUMENT})"
    )
    for index in indexes:
        loop.run_until_complete(index.close())
    loop.close()

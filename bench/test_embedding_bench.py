"""The embedded embedder (all-MiniLM-L6-v2 int8 on onnxruntime) measured through
``OnnxMiniLMEmbedder``'s public, async API, as the gateway calls it: one query (what
every chat request with retrieval pays), and batches of 64 short sentences and of 64
chunks of ~200 tokens (what ingestion pays), with 1 and 2 intra-op threads.

    .venv/bin/python -m pytest bench/test_embedding_bench.py --benchmark-only

Not part of the suite (``testpaths`` is ``tests``); it asserts nothing about time, it
reports. Target: a query in 4-6 ms on the 2-core machines here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder

QUERY = "How do I reset the password of my account?"
SENTENCES = [
    f"Sentence {n}: the {['red', 'green', 'blue', 'grey'][n % 4]} valve leaks "
    + "when the pressure rises " * (1 + n % 3)
    for n in range(64)
]
# ~200 WordPiece tokens each: the chunker's default size.
CHUNKS = [
    " ".join(
        f"Chunk {n} paragraph about espresso machines, descaling and steam wands."
        for _ in range(12)
    )
    for n in range(64)
]


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"threads={n}")
def embedder(
    request: pytest.FixtureRequest, runner: asyncio.Runner
) -> Iterator[OnnxMiniLMEmbedder]:
    embedder = OnnxMiniLMEmbedder(intra_op_threads=request.param, query_threads=request.param)
    runner.run(embedder.embed_query("warm up"))  # the session loads on first use
    yield embedder
    embedder.close()


def test_query(
    benchmark: BenchmarkFixture, embedder: OnnxMiniLMEmbedder, runner: asyncio.Runner
) -> None:
    benchmark.extra_info["tokens"] = embedder.count_tokens(QUERY) + 2
    benchmark(lambda: runner.run(embedder.embed_query(QUERY)))


@pytest.mark.parametrize("texts", [SENTENCES, CHUNKS], ids=["64-sentences", "64-chunks"])
def test_batch_of_64(
    benchmark: BenchmarkFixture,
    embedder: OnnxMiniLMEmbedder,
    runner: asyncio.Runner,
    texts: list[str],
) -> None:
    benchmark.extra_info["tokens"] = sum(min(embedder.count_tokens(t) + 2, 256) for t in texts)
    benchmark.pedantic(
        lambda: runner.run(embedder.embed_documents(texts)), rounds=5, warmup_rounds=1
    )

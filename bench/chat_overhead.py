"""What ``/v1/chat`` itself costs on the embedded defaults, end to end over loopback.

    .venv/bin/python -m bench.chat_overhead [--chunks 100000] [--memories 10000]
                                            [--users 1000] [--requests 400]

The gateway runs as in production on one worker: the embedded MiniLM embedder (ONNX),
Qdrant Edge holding ``--chunks`` document chunks (~200 words each, after ``optimize()``)
and ``--memories`` memories spread over ``--users`` users of the same tenant, and the
fake upstream (tests/fakes/fake_upstream.py) answering at once, so generation costs
next to nothing and the rest is the gateway's. The stores are filled before the gateway
starts, with synthetic unit vectors (a search costs the same whatever the vectors mean;
embedding 100k real chunks here would take over an hour); queries are real text,
embedded for real on every request, and name words of the corpus so the keyword half of
the hybrid search finds something too.

Requests go one at a time (no queueing: each figure is one request's own cost), each as
a different user picked at random, back to back or at 20 a second. Figures, p50 / p95 / p99 in ms:

- *non-generation overhead*: the client's latency minus the ``generation_ms`` the
  gateway reports: auth, admission, decoding, embedding, retrieval, context, enqueueing
  the turn, encoding the answer, and the loopback HTTP both ways;
- *retrieval*: embedding + the slower of memory and document retrieval (they run
  together), as the response's metadata reports them; and each stage alone;
- *added latency*: ``/v1/chat`` against the same generation request sent straight to the
  upstream (difference of the percentiles of the two runs).

Rows: not storing the turn; storing it (``store_memory: true``, the default: the
background writer then embeds and stores it, competing for the CPU), back to back and
at 20 requests a second.
Writes bench/results/chat_overhead.{md,json}; the servers' logs go to
bench/results/logs/chat-overhead/."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from adapters.inference.onnx_embedder import locate_minilm
from adapters.memory.qdrant_memory import QdrantEdgeMemoryStore
from adapters.vector.qdrant_index import QdrantEdgeIndex
from bench.processes import Fleet, stop_on_signals
from bench.servers import BENCH_KEY, FAST_MODEL, ROOT, start_fake_upstream, start_gateway
from bench.test_index_bench import CHUNK_WORDS, DIMENSION, TENANT, Corpus, unit_vectors
from domain.memory import DecayPolicy, Memory

RESULTS = ROOT / "bench" / "results"
# (label, store_memory, requests a second or None for back to back). Storing, the
# background writer embeds each turn: back to back on two cores it competes with the
# next request; at 20 requests a second it has the time between them.
ROWS = (
    ("no_store", False, None),
    ("store_memory", True, None),
    ("store_memory_20rps", True, 20.0),
)
DAY_S = 86_400.0
UNLIMITED = {"requests_per_minute": 10**9, "tokens_per_minute": 10**12}
QUESTIONS = [
    "What does the manual say about {a} and {b}?",
    "Remind me what I said about {a}.",
    "Is {a} compatible with {b} or {c}?",
    "How do I configure {a} for {b}?",
]


def english_words() -> list[str]:
    """Whole words of MiniLM's WordPiece vocabulary, most frequent first: a text of
    them costs about one token a word, as English prose does."""
    vocabulary = json.loads(locate_minilm()[1].read_text())["model"]["vocab"]
    ranked = sorted(vocabulary.items(), key=lambda item: item[1])
    return [w for w, _ in ranked if w.isalpha() and w.isascii() and len(w) > 2][:20_000]


WORDS = english_words()


def corpus(count: int, seed: int) -> Corpus:
    """Zipf-distributed words, ~200 tokens a chunk (the chunker's default size)."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.2, size=(count, CHUNK_WORDS)), len(WORDS)) - 1
    texts = [" ".join(WORDS[r] for r in row) for row in ranks]
    return Corpus(texts, unit_vectors(rng, count))


def build_stores(data: Path, chunks: int, memories: int, users: int) -> None:
    """The gateway's own layout under its data directory (see gateway.container)."""

    async def fill() -> None:
        index = QdrantEdgeIndex(data / "qdrant" / "documents", DIMENSION)
        started = time.perf_counter()
        documents = corpus(chunks, seed=chunks)
        for document, parts, vectors in documents.documents("kb"):
            await index.replace(document, parts, vectors)
        await index.optimize()
        await index.close()
        print(f"{chunks} chunks indexed in {time.perf_counter() - started:.0f} s", flush=True)

        store = QdrantEdgeMemoryStore(data / "qdrant" / "memories", DIMENSION, decay=DecayPolicy())
        started = time.perf_counter()
        rng = np.random.default_rng(memories)
        now = time.time()
        vectors = unit_vectors(rng, memories).tolist()
        for n, vector in enumerate(vectors):
            words = " ".join(WORDS[int(r)] for r in rng.integers(100, 5000, size=12))
            memory = Memory(
                id=f"mem-bench-{n:06d}",
                tenant=TENANT,
                user_id=f"user-{n % users:04d}",
                text=f"User: I told you about {words}.\nAssistant: Noted.",
                created_at=now - float(rng.uniform(0, 90)) * DAY_S,
            )
            await store.add(memory, vector)
        await store.close()
        print(f"{memories} memories stored in {time.perf_counter() - started:.0f} s", flush=True)

    asyncio.run(fill())


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "n": len(ordered)}


def question(rng: random.Random) -> str:
    words = {k: WORDS[rng.randrange(100, 5000)] for k in "abc"}
    return rng.choice(QUESTIONS).format(**words)


def run_chat(
    client: httpx.Client,
    base: str,
    requests: int,
    users: int,
    store: bool,
    seed: int,
    rate: float | None = None,
) -> dict[str, list[float]]:
    """``rate``: requests a second, each leaving on its schedule (when the one before
    has answered); None: back to back."""
    rng = random.Random(seed)
    due = time.perf_counter()
    series: dict[str, list[float]] = {
        k: []
        for k in ("client_ms", "overhead_ms", "retrieval_ms", "embedding_ms",
                  "memory_retrieval_ms", "rag_retrieval_ms", "generation_ms")
    }  # fmt: skip
    for _ in range(requests):
        if rate is not None:
            due += 1 / rate
            time.sleep(max(0.0, due - time.perf_counter()))
        body = {
            "messages": [{"role": "user", "content": question(rng)}],
            "user_id": f"user-{rng.randrange(users):04d}",
            "max_tokens": 64,
            "store_memory": store,
        }
        started = time.perf_counter()
        answer = client.post(f"{base}/v1/chat", json=body)
        elapsed = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        meta = answer.json()["metadata"]
        if meta["degraded"]:
            raise RuntimeError(f"a stage degraded: {meta['degraded']}")
        series["client_ms"].append(elapsed)
        series["overhead_ms"].append(elapsed - meta["generation_ms"])
        series["retrieval_ms"].append(
            meta["embedding_ms"] + max(meta["memory_retrieval_ms"], meta["rag_retrieval_ms"])
        )
        for stage in ("embedding_ms", "memory_retrieval_ms", "rag_retrieval_ms", "generation_ms"):
            series[stage].append(meta[stage])
    return series


def run_direct(client: httpx.Client, url: str, requests: int, seed: int) -> list[float]:
    """The generation request alone, straight to the upstream."""
    rng = random.Random(seed)
    latencies = []
    for _ in range(requests):
        body = {
            "model": FAST_MODEL,
            "messages": [
                {"role": "system", "content": "Context: " + question(rng) * 40},
                {"role": "user", "content": question(rng)},
            ],
            "max_tokens": 64,
        }
        started = time.perf_counter()
        client.post(url, json=body).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def timed(label: str, work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = work()
    print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_overhead", description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args(argv)
    stop_on_signals()
    logs = RESULTS / "logs" / "chat-overhead"
    shutil.rmtree(logs, ignore_errors=True)
    (logs / "gateway").mkdir(parents=True)
    # Built once per plan (two minutes for 100k chunks) and copied for each run, so
    # every run starts from the same stores.
    built = RESULTS / "logs" / f"chat-overhead-stores-{args.chunks}-{args.memories}-{args.users}"
    if not (built / "complete").exists():
        shutil.rmtree(built, ignore_errors=True)
        timed("stores built", lambda: build_stores(built, args.chunks, args.memories, args.users))
        (built / "complete").touch()
    shutil.copytree(built / "qdrant", logs / "gateway" / "data" / "qdrant")
    results: dict[str, Any] = {"plan": vars(args)}
    with Fleet(logs) as fleet:
        upstream = start_fake_upstream(
            fleet, "upstream", FAST_MODEL, tokens=8, gap_ms=0, cores=None
        )
        gateway = start_gateway(
            fleet, [upstream], cores=None,
            extra_env={
                "API_KEYS": f"{BENCH_KEY}:developer:{TENANT}",
                "GATEWAY_TIER_LIMITS": json.dumps(
                    {tier: UNLIMITED for tier in ("standard", "developer", "admin")}
                ),
            },
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        with httpx.Client(headers=headers, timeout=30) as client:
            run_chat(client, gateway.base_url, 30, args.users, False, seed=0)  # warm-up
            for label, store, rate in ROWS:
                series = timed(label, lambda s=store, r=rate: run_chat(  # type: ignore[misc]
                    client, gateway.base_url, args.requests, args.users, s, seed=1, rate=r
                ))  # fmt: skip
                results[label] = {k: percentiles(v) for k, v in series.items()}
            direct = run_direct(client, upstream.chat_url, args.requests, seed=1)
            results["direct_upstream_ms"] = percentiles(direct)
    for label, _, _ in ROWS:
        row = results[label]
        row["added_ms"] = {
            q: round(row["client_ms"][q] - results["direct_upstream_ms"][q], 2)
            for q in ("p50", "p95", "p99")
        }
    write(results)


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chat_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    plan = results["plan"]
    lines = [
        "# /v1/chat overhead on the embedded defaults",
        "",
        f"{plan['chunks']:,} chunks and {plan['memories']:,} memories over {plan['users']:,} "
        f"users in Qdrant Edge; MiniLM (ONNX) query embedding; fake upstream; "
        f"{plan['requests']} requests one at a time per row (back to back, or at 20 a "
        "second). ms, p50 / p95 / p99.",
        "",
        "| figure | " + " | ".join(label for label, _, _ in ROWS) + " |",
        "|---" * (len(ROWS) + 1) + "|",
    ]
    for key in ("overhead_ms", "retrieval_ms", "embedding_ms", "memory_retrieval_ms",
                "rag_retrieval_ms", "generation_ms", "client_ms", "added_ms"):  # fmt: skip
        cells = []
        for label, _, _ in ROWS:
            p = results[label][key]
            cells.append(f"{p['p50']} / {p['p95']} / {p['p99']}")
        lines.append(f"| {key} | {' | '.join(cells)} |")
    d = results["direct_upstream_ms"]
    lines += ["", f"Direct to the upstream: {d['p50']} / {d['p95']} / {d['p99']} ms.", ""]
    (RESULTS / "chat_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

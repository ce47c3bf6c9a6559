"""Another tenant's one-input ``/v1/embeddings`` latency while one tenant floods the
shared document embedder with bulk requests (embedded MiniLM, real gateway process).

    PYTHONPATH=src:. .venv/bin/python -m bench.embedding_fairness [--seconds 90]

Tenant ``bulk`` keeps ``--floods`` requests of ``--inputs`` texts in flight; tenant
``other`` asks for one vector every half second. Prints the other tenant's p50/p95/max
and the bulk throughput. A measurement, not a test."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tests.conftest import start_fake_upstream, start_gateway, stop

UNLIMITED = '{"developer": {"requests_per_minute": 1000000, "tokens_per_minute": 1000000000}}'
TEXT = "The quarterly report lists revenue, churn and the support backlog by region. " * 6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--floods", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=2048)
    args = parser.parse_args()
    upstream = start_fake_upstream("--models", "fake-model")
    with tempfile.TemporaryDirectory() as tmp:
        gateway = start_gateway(
            {
                "MAX_SERVE_URL": upstream.url,
                "API_KEYS": "sk-bulk:developer:bulk,sk-other:developer:other",
                "GATEWAY_TIER_LIMITS": UNLIMITED,
            },
            Path(tmp),
        )
        try:
            run(gateway.url, args)
        finally:
            stop(gateway.process)  # type: ignore[arg-type]
            stop(upstream.process)


def run(url: str, args: argparse.Namespace) -> None:
    done = threading.Event()
    bulk_texts = 0

    def flood() -> None:
        nonlocal bulk_texts
        body = {"input": [f"{i} {TEXT}" for i in range(args.inputs)]}
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer sk-bulk"}) as c:
            while not done.is_set():
                if c.post("/v1/embeddings", json=body, timeout=600).status_code == 200:
                    bulk_texts += args.inputs

    floods = [threading.Thread(target=flood) for _ in range(args.floods)]
    for thread in floods:
        thread.start()
    time.sleep(2)
    latencies: list[float] = []
    deadline = time.monotonic() + args.seconds
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer sk-other"}) as c:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = c.post("/v1/embeddings", json={"input": "one short text"}, timeout=600)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.5)
    done.set()
    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(
        f"other tenant, one input: n={len(latencies)} p50={statistics.median(latencies):.2f}s "
        f"p95={p95:.2f}s max={latencies[-1]:.2f}s; bulk texts embedded: {bulk_texts}"
    )
    for thread in floods:
        thread.join()


if __name__ == "__main__":
    main()

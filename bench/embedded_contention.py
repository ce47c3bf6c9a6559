"""The embedded model and the embedded embedder on one small machine: short measurements
behind the thread defaults and the cancellation of non-streamed answers.

    .venv/bin/python -m bench.embedded_contention threads   # per thread setting
    .venv/bin/python -m bench.embedded_contention cancel    # after clients give up

``threads`` starts a zero-configuration gateway per setting and measures, while
documents are ingested without pause, streamed chat (tokens/s, first token) and the
query embedding of ``/v1/chat`` (``metadata.embedding_ms``). ``cancel`` measures how
long the next small request waits after two clients gave up (1 s) on non-streamed
1500-token answers. ``--src`` runs another source tree (the code before a change)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

KEY = "sk-dev-key-789"  # the development tier's dev key: may ingest
HEADERS = {"Authorization": f"Bearer {KEY}"}
NEVER_STOP = {"logit_bias": {"2": -100}}  # SmolLM2's end-of-text token, banned
SETTINGS = [
    {"GATEWAY_EMBEDDED_THREADS": "2", "GATEWAY_EMBEDDER_QUERY_THREADS": "2"},
    {"GATEWAY_EMBEDDED_THREADS": "2", "GATEWAY_EMBEDDER_QUERY_THREADS": "1"},
    {"GATEWAY_EMBEDDED_THREADS": "1", "GATEWAY_EMBEDDER_QUERY_THREADS": "1"},
    {"GATEWAY_EMBEDDED_THREADS": "1", "GATEWAY_EMBEDDER_QUERY_THREADS": "2"},
]
DOCUMENT = " ".join(
    f"Paragraph {i}: the lighthouse keeper logged the weather, the ships and the tides."
    for i in range(400)
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(env: dict[str, str], work: Path, src: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environment.update(GATEWAY_DATA_DIR=str(work / "data"), **env)
    if src:
        environment["PYTHONPATH"] = src
    log = (work / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port)],
        env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the gateway did not become ready")


def stream_rate(base: str, tokens: int = 96) -> tuple[float, float]:
    """Tokens/s after the first, and the first token's ms, of one streamed answer."""
    body = {"messages": [{"role": "user", "content": "Tell me a story."}], "stream": True,
            "max_tokens": tokens, **NEVER_STOP}  # fmt: skip
    started = time.perf_counter()
    stamps = []
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json=body, headers=HEADERS, timeout=300
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    stamps.append(time.perf_counter())
    first = (stamps[0] - started) * 1000
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), first


def embedding_ms(base: str) -> float:
    body = {"messages": [{"role": "user", "content": "What did the keeper log?"}],
            "use_memory": False, "max_tokens": 1, "latency_budget_ms": 60000}  # fmt: skip
    answer = httpx.post(f"{base}/v1/chat", json=body, headers=HEADERS, timeout=300).json()
    return float(answer["metadata"]["embedding_ms"])


def under_ingestion(base: str) -> dict[str, Any]:
    """Idle figures, then chat and query embeddings while documents are ingested."""
    stream_rate(base, 8)  # warm
    idle = [embedding_ms(base) for _ in range(5)]
    quiet = [stream_rate(base) for _ in range(2)]
    done = threading.Event()
    ingested = [0]

    def ingest() -> None:
        while not done.is_set():
            httpx.post(
                f"{base}/v1/documents", headers=HEADERS, timeout=300,
                json={"text": DOCUMENT, "source": f"doc-{ingested[0]}"},
            ).raise_for_status()  # fmt: skip
            ingested[0] += 1

    busy_rates: list[tuple[float, float]] = []

    def chat() -> None:
        busy_rates.append(stream_rate(base))

    ingester = threading.Thread(target=ingest)
    ingester.start()
    time.sleep(1)
    busy_embeddings: list[float] = []
    for _ in range(3):
        chatting = threading.Thread(target=chat)
        chatting.start()
        time.sleep(0.3)
        busy_embeddings += [embedding_ms(base) for _ in range(2)]
        chatting.join()
    done.set()
    ingester.join()
    return {
        "idle_query_embedding_ms": round(statistics.median(idle), 1),
        "idle_tokens_per_s": round(statistics.median(r for r, _ in quiet), 1),
        "busy_tokens_per_s": round(statistics.median(r for r, _ in busy_rates), 1),
        "busy_first_token_ms": round(statistics.median(f for _, f in busy_rates), 1),
        "busy_query_embedding_ms": round(statistics.median(busy_embeddings), 1),
        "documents_ingested": ingested[0],
    }


def threads(src: str | None) -> list[dict[str, Any]]:
    results = []
    for setting in SETTINGS:
        with tempfile.TemporaryDirectory() as tmp:
            process, base = start(setting, Path(tmp), src)
            try:
                result = {**setting, **under_ingestion(base)}
            finally:
                process.terminate()
                process.wait(30)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def cancel(src: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        process, base = start({}, Path(tmp), src)
        try:
            long = {"messages": [{"role": "user", "content": "Write a long story."}],
                    "max_tokens": 1500, **NEVER_STOP}  # fmt: skip
            for _ in range(2):
                with contextlib.suppress(httpx.TimeoutException):
                    httpx.post(f"{base}/v1/chat/completions", json=long, headers=HEADERS,
                               timeout=1.0)  # fmt: skip
            started = time.perf_counter()
            small = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            response = httpx.post(
                f"{base}/v1/chat/completions", json=small, headers=HEADERS, timeout=600
            )
            waited = time.perf_counter() - started
            print(json.dumps({"status": response.status_code, "next_request_s": round(waited, 2)}))
            return waited
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["threads", "cancel"])
    parser.add_argument("--src", help="PYTHONPATH of another source tree")
    args = parser.parse_args()
    (threads if args.what == "threads" else cancel)(args.src)


if __name__ == "__main__":
    main()

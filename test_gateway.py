#!/usr/bin/env python3
"""End-to-end check of a RUNNING gateway, for operators checking a deployment.

    python test_gateway.py                        # http://localhost:9000, sk-test-key-123
    GATEWAY_URL=https://gw.example.com GATEWAY_API_KEY=sk-... python test_gateway.py
    python test_gateway.py --developer-key sk-dev-...   # also ingests a document for RAG

Checks health, authentication (valid, invalid, missing key), chat completions and the
unified chat (basic, memory, RAG, full), and prints one line per check with its latency
against the seed's target (< 3000 ms): PASS, SLOW (it passed, over the target) or FAIL.
Exit code 1 only when a check fails; SLOW is reported apart. It cleans up after itself: the memories
of its own throw-away user, and the document it ingested.

Needs only httpx. The developers' tests are the pytest suites; this is not one of them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

TARGET_MS = 3000.0
SEED_MODEL = "llama-3.3-8b-instruct"


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Result:
    name: str
    ok: bool
    latency_ms: float
    detail: str = ""


class GatewayCheck:
    def __init__(self, url: str, key: str, model: str, developer_key: str | None) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=60.0)
        self.key = key
        self.model = model
        self.developer_key = developer_key
        self.user_id = f"ops-check-{uuid.uuid4().hex[:12]}"
        self.document_id: str | None = None
        self.latency_ms = 0.0

    # --- HTTP ------------------------------------------------------------------------
    def call(self, method: str, path: str, key: str | None = "", **kwargs: Any) -> httpx.Response:
        """One request, timed; ``key=""`` sends the checked key, ``None`` sends none."""
        headers = {} if key is None else {"Authorization": f"Bearer {key or self.key}"}
        started = time.perf_counter()
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.latency_ms = (time.perf_counter() - started) * 1000
        return response

    def json_of(self, response: httpx.Response, status: int = 200) -> Any:
        expect(
            response.status_code == status,
            f"HTTP {response.status_code} (expected {status}): {response.text[:200]}",
        )
        return response.json()

    def unified(self, content: str, **options: Any) -> dict[str, Any]:
        body = {"messages": [{"role": "user", "content": content}], "max_tokens": 64, **options}
        answer = self.json_of(self.call("POST", "/v1/chat", json=body))
        expect(answer.get("object") == "unified.chat.completion", "not a unified.chat.completion")
        expect(isinstance(answer["choices"][0]["message"]["content"], str), "no answer text")
        metadata = answer["metadata"]
        expect(
            isinstance(metadata.get("total_latency_ms"), int | float),
            "no metadata.total_latency_ms",
        )
        degraded = [f"{d['stage']}: {d['reason']}" for d in metadata.get("degraded", [])]
        expect(not degraded, "degraded: " + "; ".join(degraded))
        return answer

    # --- the checks ----------------------------------------------------------------------
    def health(self) -> str:
        body = self.json_of(self.call("GET", "/health", key=None))
        expect(body.get("status") in ("healthy", "degraded"), f"status {body.get('status')}")
        services = ", ".join(f"{k}={v['status']}" for k, v in body["services"].items())
        return f"{body['status']} ({services})"

    def auth_valid(self) -> str:
        self.json_of(self.call("GET", "/v1/models"))
        return "key accepted"

    def auth_invalid(self) -> str:
        error = self.json_of(self.call("GET", "/v1/models", key="sk-not-a-valid-key"), 401)
        expect("error" in error, "401 without an OpenAI error body")
        return "401 invalid_api_key"

    def auth_missing(self) -> str:
        error = self.json_of(self.call("GET", "/v1/models", key=None), 401)
        expect("error" in error, "401 without an OpenAI error body")
        return "401 without a key"

    def completions(self) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 32,
        }
        answer = self.json_of(self.call("POST", "/v1/chat/completions", json=body))
        expect(answer.get("object") == "chat.completion", "not a chat.completion")
        content = answer["choices"][0]["message"]["content"]
        expect(isinstance(content, str), "no answer text")
        return f"model {answer['model']}, {len(content)} characters"

    def unified_basic(self) -> str:
        answer = self.unified("Hello!", use_memory=False, use_rag=False, store_memory=False)
        return f"{answer['metadata']['total_latency_ms']:.0f} ms inside the gateway"

    def unified_memory(self) -> str:
        answer = self.unified(
            "My favourite colour is teal.", user_id=self.user_id, use_rag=False, store_memory=True
        )
        metadata = answer["metadata"]
        expect(metadata["memory_stored"] is True, "the turn was not queued for memory")
        return f"{metadata['memories_retrieved']} memories retrieved, turn stored"

    def unified_rag(self) -> str:
        if self.developer_key:
            document = {
                "source": f"ops-check/{self.user_id}.md",
                "text": "The ops check document says the gateway listens on port 9000.",
            }
            created = self.json_of(
                self.call("POST", "/v1/documents", key=self.developer_key, json=document), 201
            )
            self.document_id = created["id"]
        answer = self.unified(
            "Which port does the gateway listen on?", use_memory=False, rag_k=3, store_memory=False
        )
        found = answer["metadata"]["rag_documents_retrieved"]
        if self.document_id:
            expect(found > 0, "the ingested document was not retrieved")
        return f"{found} documents retrieved"

    def unified_full(self) -> str:
        answer = self.unified(
            "What do you know about me?",
            user_id=self.user_id,
            use_memory=True,
            use_rag=True,
            store_memory=True,
            rag_k=3,
            memory_limit=5,
            max_tokens=100,
        )
        m = answer["metadata"]
        return (
            f"memory {m['memory_retrieval_ms']:.0f} ms, rag {m['rag_retrieval_ms']:.0f} ms, "
            f"generation {m['generation_ms']:.0f} ms"
        )

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("health", self.health),
            ("auth: valid key", self.auth_valid),
            ("auth: invalid key", self.auth_invalid),
            ("auth: missing key", self.auth_missing),
            ("chat completions", self.completions),
            ("unified chat: basic", self.unified_basic),
            ("unified chat: memory", self.unified_memory),
            ("unified chat: RAG", self.unified_rag),
            ("unified chat: full", self.unified_full),
        ]

    def run(self, name: str, check: Callable[[], str]) -> Result:
        self.latency_ms = 0.0
        try:
            detail = check()
        except CheckFailed as exc:
            return Result(name, False, self.latency_ms, str(exc))
        except (httpx.HTTPError, KeyError, TypeError, ValueError, IndexError) as exc:
            return Result(name, False, self.latency_ms, f"{type(exc).__name__}: {exc}")
        return Result(name, True, self.latency_ms, detail)

    def clean_up(self) -> None:
        """Forgets the throw-away user (once its turns are stored) and the document."""
        if self.document_id and self.developer_key:
            self.call("DELETE", f"/v1/documents/{self.document_id}", key=self.developer_key)
        deadline = time.monotonic() + 5
        params = {"user_id": self.user_id}
        while time.monotonic() < deadline:  # turns are stored asynchronously
            listed = self.call("GET", "/v1/memories", params=params)
            if listed.status_code != 200 or len(listed.json().get("data", [])) >= 2:
                break
            time.sleep(0.2)
        self.call("DELETE", "/v1/memories", params=params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="End-to-end check of a running gateway.")
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", "http://localhost:9000"))
    parser.add_argument("--key", default=os.environ.get("GATEWAY_API_KEY", "sk-test-key-123"))
    parser.add_argument("--model", default=SEED_MODEL, help="model for chat (%(default)s)")
    parser.add_argument(
        "--developer-key", help="a developer-tier key: ingest a document for the RAG check"
    )
    parser.add_argument("--target-ms", type=float, default=TARGET_MS, help="latency target")
    args = parser.parse_args(argv)

    gateway = GatewayCheck(args.url, args.key, args.model, args.developer_key)
    try:
        gateway.client.get("/health/live", timeout=5)
    except httpx.HTTPError as exc:
        print(f"no gateway answers at {args.url} ({exc}). Start one: make gateway-start")
        return 1

    print(f"Checking the gateway at {args.url} (target < {args.target_ms:.0f} ms per request)\n")
    verdicts: list[str] = []
    for name, check in gateway.checks():
        result = gateway.run(name, check)
        slow = result.ok and result.latency_ms >= args.target_ms
        verdict = "PASS" if result.ok and not slow else ("SLOW" if slow else "FAIL")
        verdicts.append(verdict)
        print(
            f"{verdict}  {name:<22} {result.latency_ms:8.1f} ms / {args.target_ms:.0f} ms"
            f"  {result.detail}"
        )
    try:
        gateway.clean_up()
    except httpx.HTTPError as exc:
        print(f"\ncleanup failed ({exc}): forget user {gateway.user_id} by hand")

    # A slow check worked: it is reported, and only a failed one sets the exit code.
    passed, slow, failed = (verdicts.count(v) for v in ("PASS", "SLOW", "FAIL"))
    print(f"\n{passed} passed, {slow} slow (over {args.target_ms:.0f} ms), {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

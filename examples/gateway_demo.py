"""The gateway's six scenarios, end to end, against a running gateway.

1. Basic chat            - inference only
2. Memory storage        - a turn queued as memory, stored in the background
3. Memory retrieval      - a later question sees what was said before
4. RAG integration       - a document ingested, then retrieved as context
5. Full integration      - memories and documents together
6. Multi-turn conversation

For each it prints what every stage returned (memories, documents, the answer) and its
timings (embedding, memory, RAG, generation, total) and any degraded stage.

    python examples/gateway_demo.py [--max-tokens N] [--url URL]

Environment: GATEWAY_URL (default http://localhost:9000), GATEWAY_API_KEY (default
sk-test-key-123), GATEWAY_ADMIN_KEY (a developer or admin key that may ingest the RAG
scenario's document; default sk-dev-key-789), GATEWAY_DEMO_MAX_TOKENS."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
import uuid
from typing import Any

import httpx

DOCUMENT_SOURCE = "gateway-demo/gateway-guide.md"
DOCUMENT = (
    "The AI Platform API Gateway listens on port 9000. Its end-to-end latency target for "
    "the unified /v1/chat endpoint is under 3 seconds. Callers authenticate with Bearer "
    "API keys in three tiers: standard, developer and admin. Memories are scored with "
    "temporal decay: a memory 30 days old counts half as much as a new one."
)
WIDTH = 88


class DemoError(Exception):
    """A request the demo depends on failed; the message says which and why."""


def shorten(text: str, width: int = 70) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" ...")


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


class Demo:
    def __init__(self, url: str, api_key: str, admin_key: str, args: argparse.Namespace) -> None:
        self.url = url
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=args.timeout
        )
        self.admin = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=args.timeout
        )
        self.user_id = args.user_id or f"alice-{uuid.uuid4().hex[:6]}"
        self.defaults: dict[str, Any] = {"max_tokens": args.max_tokens}
        if args.latency_budget_ms:
            self.defaults["latency_budget_ms"] = args.latency_budget_ms
        self.summary: list[tuple[str, dict[str, Any]]] = []

    def close(self) -> None:
        self.client.close()
        self.admin.close()

    # --- talking to the gateway ------------------------------------------------------------

    def check_gateway(self) -> dict[str, Any]:
        try:
            response = self.client.get("/health")
        except httpx.TransportError as exc:
            raise DemoError(
                f"No gateway is running at {self.url} ({exc.__class__.__name__}: {exc}).\n"
                "Start one with `gateway serve` (or `make gateway-start`), or point "
                "GATEWAY_URL at it."
            ) from None
        health: dict[str, Any] = response.json()
        return health

    def chat(self, messages: list[dict[str, str]], **params: Any) -> dict[str, Any]:
        body = {"messages": messages, **self.defaults, **params}
        try:
            response = self.client.post("/v1/chat", json=body)
        except httpx.TransportError as exc:
            raise DemoError(f"POST /v1/chat failed: {exc}") from None
        if response.status_code != 200:
            raise DemoError(
                f"POST /v1/chat answered {response.status_code}: {error_message(response)}"
            )
        answer: dict[str, Any] = response.json()
        return answer

    def wait_until_stored(self, memory_id: str, within_s: float = 30.0) -> float | None:
        """Seconds until the write-behind stored ``memory_id`` (None if it did not)."""
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            response = self.client.get("/v1/memories", params={"user_id": self.user_id})
            if response.status_code != 200:
                raise DemoError(f"GET /v1/memories answered {response.status_code}")
            if any(m["id"] == memory_id for m in response.json()["data"]):
                return time.monotonic() - started
            time.sleep(0.1)
        return None

    def ingest(self) -> None:
        response = self.admin.post(
            "/v1/documents",
            json={"text": DOCUMENT, "source": DOCUMENT_SOURCE, "metadata": {"demo": True}},
        )
        if response.status_code != 201:
            raise DemoError(
                f"ingesting the demo document answered {response.status_code}: "
                f"{error_message(response)} (GATEWAY_ADMIN_KEY must be a developer or admin key)"
            )
        created = response.json()
        print(
            f"  ingested  {created['source']} ({created['chunk_count']} chunk(s), {created['id']})"
        )

    # --- printing ----------------------------------------------------------------------------

    def title(self, text: str, what: str) -> None:
        print()
        print(f"=== {text} ".ljust(WIDTH, "="))
        print(f"  {what}")

    def said(self, text: str) -> None:
        print(f"  user      {shorten(text, WIDTH - 12)}")

    def show(self, scenario: str, answer: dict[str, Any]) -> None:
        """What each stage returned, then its timings."""
        context, metadata = answer["context"], answer["metadata"]
        memories, documents = context["memories"], context["rag_documents"]
        print(f"  memories  {len(memories)} retrieved")
        for memory in memories:
            print(
                f"    {memory['score']:6.3f}  {memory['timestamp'][:19]}  {shorten(memory['text'])}"
            )
        print(f"  documents {len(documents)} retrieved")
        for document in documents:
            source = document["metadata"].get("source", "?")
            print(f"    {document['score']:6.3f}  {source}: {shorten(document['text'], 56)}")
        content = answer["choices"][0]["message"]["content"] or ""
        print(f"  answer    {shorten(content, WIDTH - 12)}")
        print(f"            ({answer['choices'][0]['finish_reason']}, model {answer['model']})")
        print(
            "  timings   "
            f"embedding {metadata['embedding_ms']:.1f} ms | "
            f"memory {metadata['memory_retrieval_ms']:.1f} ms | "
            f"RAG {metadata['rag_retrieval_ms']:.1f} ms | "
            f"generation {metadata['generation_ms']:.1f} ms | "
            f"total {metadata['total_latency_ms']:.1f} ms"
        )
        budget = "within" if metadata["within_budget"] else "over"
        print(f"            {budget} the latency budget")
        degraded = metadata["degraded"]
        print(f"  degraded  {'none' if not degraded else ''}")
        for entry in degraded:
            print(f"    {entry['stage']}: {entry['reason']}")
        stored = f"queued as {metadata['memory_id']}" if metadata["memory_stored"] else "not stored"
        print(f"  memory    {stored}")
        self.summary.append((scenario, metadata))

    # --- the six scenarios -------------------------------------------------------------------

    def basic_chat(self) -> None:
        self.title("1. Basic chat", "Inference only: no memory, no documents.")
        question = "Hello! In one sentence, what can you help me with?"
        self.said(question)
        answer = self.chat(
            [{"role": "user", "content": question}],
            use_memory=False,
            use_rag=False,
            store_memory=False,
        )
        self.show("1. Basic chat", answer)

    def memory_storage(self) -> None:
        self.title("2. Memory storage", f"User {self.user_id} says something worth remembering.")
        fact = "Hi, I'm Alice. My favourite city is Reykjavik and I work as a marine biologist."
        self.said(fact)
        answer = self.chat([{"role": "user", "content": fact}], user_id=self.user_id, use_rag=False)
        self.show("2. Memory storage", answer)
        memory_id = answer["metadata"]["memory_id"]
        if memory_id is None:
            print("  stored    no: the gateway could not queue the turn (see degraded)")
            return
        after = self.wait_until_stored(memory_id)
        if after is None:
            print("  stored    not yet: the turn is still queued for storage")
        else:
            print(f"  stored    in the background, listed {after:.1f} s after the answer")

    def memory_retrieval(self) -> None:
        self.title("3. Memory retrieval", "A later question: what was said before comes back.")
        question = "Which city do I like, and what is my job?"
        self.said(question)
        answer = self.chat(
            [{"role": "user", "content": question}],
            user_id=self.user_id,
            use_rag=False,
            store_memory=False,
        )
        self.show("3. Memory retrieval", answer)

    def rag_integration(self) -> None:
        self.title("4. RAG integration", "A document is ingested, then retrieved as context.")
        self.ingest()
        question = "What is the gateway's latency target?"
        self.said(question)
        answer = self.chat([{"role": "user", "content": question}], use_memory=False, rag_k=3)
        self.show("4. RAG integration", answer)

    def full_integration(self) -> None:
        self.title("5. Full integration", "Memories and documents in one request.")
        question = "Given what you know about me, which port does the gateway listen on?"
        self.said(question)
        answer = self.chat(
            [{"role": "user", "content": question}],
            user_id=self.user_id,
            rag_k=3,
            memory_limit=5,
        )
        self.show("5. Full integration", answer)

    def multi_turn(self) -> None:
        self.title("6. Multi-turn conversation", "The conversation so far goes with each turn.")
        messages: list[dict[str, str]] = []
        for turn, text in enumerate(
            ("I'm planning a trip to Reykjavik next month.", "What should I pack for it?"), 1
        ):
            messages.append({"role": "user", "content": text})
            print(f"  -- turn {turn}")
            self.said(text)
            answer = self.chat(list(messages), user_id=self.user_id, use_rag=False)
            self.show(f"6. Multi-turn conversation (turn {turn})", answer)
            messages.append(
                {"role": "assistant", "content": answer["choices"][0]["message"]["content"] or ""}
            )

    def print_summary(self) -> None:
        print()
        print("=== Summary ".ljust(WIDTH, "="))
        print(f"  {'scenario':42} {'total ms':>9} {'memories':>9} {'docs':>5}  degraded")
        for scenario, metadata in self.summary:
            degraded = ", ".join(d["stage"] for d in metadata["degraded"]) or "-"
            print(
                f"  {scenario:42} {metadata['total_latency_ms']:9.1f} "
                f"{metadata['memories_retrieved']:9d} {metadata['rag_documents_retrieved']:5d}"
                f"  {degraded}"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", "http://localhost:9000"))
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=int(os.environ.get("GATEWAY_DEMO_MAX_TOKENS", "200")),
        help="most tokens per answer (default 200; GATEWAY_DEMO_MAX_TOKENS)",
    )
    parser.add_argument("--user-id", help="whose memories (default: a new alice-… per run)")
    parser.add_argument(
        "--latency-budget-ms", type=float, help="per-request budget (default: the gateway's)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    demo = Demo(
        args.url.rstrip("/"),
        os.environ.get("GATEWAY_API_KEY", "sk-test-key-123"),
        os.environ.get("GATEWAY_ADMIN_KEY", "sk-dev-key-789"),
        args,
    )
    try:
        health = demo.check_gateway()
        print(f"Gateway at {demo.url}: {health.get('status', 'unknown')}")
        for name, service in health.get("services", {}).items():
            print(f"  {name:16} {service['status']}")
        for scenario in (
            demo.basic_chat,
            demo.memory_storage,
            demo.memory_retrieval,
            demo.rag_integration,
            demo.full_integration,
            demo.multi_turn,
        ):
            scenario()
        demo.print_summary()
    except DemoError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

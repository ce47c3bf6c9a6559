#!/usr/bin/env python3
"""RAG through the gateway: ingest a document, search it, then chat with it as context.

    python examples/rag_query_example.py     # http://localhost:9000, the seed's dev keys
    GATEWAY_URL=http://gw:9000 python examples/rag_query_example.py --developer-key sk-dev-...

Document writes need a developer-tier key (the seed's development one by default);
searching and chatting need only the standard key (GATEWAY_API_KEY). The example deletes
its document at the end.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://localhost:9000")
API_KEY = os.environ.get("GATEWAY_API_KEY", "sk-test-key-123")

DOCUMENT = {
    "source": "examples/vacation-policy.md",
    "text": (
        "# Vacation policy\n\n"
        "Employees receive 25 days of paid vacation per year. Up to 5 unused days carry "
        "over to the next year. Requests go to the team lead at least two weeks ahead.\n\n"
        "# Remote work\n\n"
        "Everyone may work remotely up to three days a week."
    ),
    "metadata": {"department": "hr"},
}
QUESTION = "How many vacation days do employees get, and how many carry over?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--developer-key", default="sk-dev-key-789")
    args = parser.parse_args()

    with httpx.Client(base_url=GATEWAY_URL, timeout=60) as client:
        try:
            client.get("/health/live")
        except httpx.ConnectError:
            print(f"No gateway answers at {GATEWAY_URL}. Start one: ./start_gateway.sh")
            return 1
        standard = {"Authorization": f"Bearer {API_KEY}"}
        developer = {"Authorization": f"Bearer {args.developer_key}"}
        document_id = None
        try:
            ingested = client.post("/v1/documents", json=DOCUMENT, headers=developer)
            document = ingested.raise_for_status().json()
            document_id = document["id"]
            print(f"ingested {document['source']}: {document['chunk_count']} chunk(s)")

            search = {"query": QUESTION, "k": 2}
            hits = client.post("/v1/rag/search", json=search, headers=standard)
            print(f"\nsearch: {QUESTION}")
            for hit in hits.raise_for_status().json()["data"]:
                print(
                    f"  score {hit['score']:.3f}  {hit['metadata'].get('source')}: "
                    f"{hit['text'][:70]!r}..."
                )

            body = {
                "messages": [{"role": "user", "content": QUESTION}],
                "use_rag": True,
                "use_memory": False,
                "store_memory": False,
                "rag_k": 2,
                "max_tokens": 150,
            }
            answer = client.post("/v1/chat", json=body, headers=standard)
            answer = answer.raise_for_status().json()
            print(f"\nanswer: {answer['choices'][0]['message']['content']}")
            metadata = answer["metadata"]
            print(
                f"({metadata['rag_documents_retrieved']} chunk(s) in context; retrieval "
                f"{metadata['rag_retrieval_ms']:.1f} ms, "
                f"generation {metadata['generation_ms']:.1f} ms)"
            )
        except httpx.HTTPStatusError as exc:
            print(f"The gateway refused: HTTP {exc.response.status_code}: {exc.response.text}")
            return 1
        finally:
            if document_id:
                client.delete(f"/v1/documents/{document_id}", headers=developer)
    return 0


if __name__ == "__main__":
    sys.exit(main())

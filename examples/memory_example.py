#!/usr/bin/env python3
"""Long-term memory through the unified chat: tell the gateway something, then ask.

    python examples/memory_example.py        # http://localhost:9000, sk-test-key-123
    GATEWAY_URL=http://gw:9000 GATEWAY_API_KEY=sk-... python examples/memory_example.py

1. A first conversation tells the gateway a fact; the turn is stored as a memory of the
   user (asynchronously, a moment later).
2. The user's memories are listed and searched.
3. A new conversation asks about the fact: the gateway puts what it knows of the user
   before the model (the latest turns as short-term context, older ones from
   ``context.memories``).
4. The example forgets its throw-away user.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import httpx

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://localhost:9000")
API_KEY = os.environ.get("GATEWAY_API_KEY", "sk-test-key-123")


def chat(client: httpx.Client, user_id: str, content: str) -> dict:
    response = client.post(
        "/v1/chat",
        json={
            "messages": [{"role": "user", "content": content}],
            "user_id": user_id,
            "use_memory": True,
            "use_rag": False,
            "store_memory": True,
            "max_tokens": 100,
        },
    )
    response.raise_for_status()
    return response.json()


def main() -> int:
    user_id = f"example-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=GATEWAY_URL, headers=headers, timeout=60) as client:
        try:
            client.get("/health/live")
        except httpx.ConnectError:
            print(f"No gateway answers at {GATEWAY_URL}. Start one: ./start_gateway.sh")
            return 1
        try:
            first = chat(client, user_id, "My favourite programming language is Rust.")
            stored = first["metadata"]["memory_stored"]
            print(f"[{user_id}] told the gateway a fact; queued for memory: {stored}")

            params = {"user_id": user_id}
            for _ in range(50):  # storage is asynchronous: wait for the memory to land
                memories = client.get("/v1/memories", params=params).raise_for_status().json()
                if memories["data"]:
                    break
                time.sleep(0.1)
            print(f"{len(memories['data'])} memory stored:")
            for memory in memories["data"]:
                print(f"  {memory['timestamp']}  {memory['text']!r}")

            search = {"user_id": user_id, "query": "favourite language", "limit": 3}
            hits = client.post("/v1/memories/search", json=search).raise_for_status().json()
            print("search 'favourite language':")
            for hit in hits["data"]:
                print(f"  score {hit['score']:.3f}  {hit['text']!r}")

            second = chat(client, user_id, "Which programming language do I like?")
            metadata = second["metadata"]
            print(f"\nnew conversation, same user ({metadata['memory_retrieval_ms']:.1f} ms):")
            # The user's latest turns reach the model as short-term context; a memory that
            # is one of them is not listed a second time among the long-term ones.
            print(f"  prompt tokens with the recalled context: {second['usage']['prompt_tokens']}")
            for memory in second["context"]["memories"]:
                print(f"  long-term memory, score {memory['score']:.3f}: {memory['text']!r}")
            print(f"answer: {second['choices'][0]['message']['content']}")
        except httpx.HTTPStatusError as exc:
            print(f"The gateway refused: HTTP {exc.response.status_code}: {exc.response.text}")
            return 1
        finally:
            client.delete("/v1/memories", params={"user_id": user_id})
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Chat through the gateway with the official OpenAI SDK: one answer, then a stream.

    python examples/chat_example.py          # http://localhost:9000, sk-test-key-123
    GATEWAY_URL=http://gw:9000 GATEWAY_API_KEY=sk-... python examples/chat_example.py

The gateway speaks OpenAI's API: only ``base_url`` and ``api_key`` change.
"""

from __future__ import annotations

import os
import sys

from openai import APIConnectionError, APIStatusError, OpenAI

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://localhost:9000")
API_KEY = os.environ.get("GATEWAY_API_KEY", "sk-test-key-123")
MODEL = "llama-3.3-8b-instruct"  # the seed's name: routed to the gateway's default model


def main() -> int:
    client = OpenAI(base_url=f"{GATEWAY_URL.rstrip('/')}/v1", api_key=API_KEY, max_retries=0)
    try:
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Name three uses of a vector database."},
            ],
            max_tokens=100,
        )
    except APIConnectionError:
        print(f"No gateway answers at {GATEWAY_URL}. Start one: ./start_gateway.sh")
        return 1
    except APIStatusError as exc:
        print(f"The gateway refused: HTTP {exc.status_code}: {exc.message}")
        return 1

    print(f"model {reply.model}:")
    print(reply.choices[0].message.content)
    if reply.usage:
        print(f"({reply.usage.prompt_tokens} prompt + {reply.usage.completion_tokens} tokens)\n")

    print("streamed:")
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=50,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

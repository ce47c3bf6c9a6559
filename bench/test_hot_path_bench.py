"""The pieces every request (or every streamed chunk) pays for, one by one, so that a
regression in one of them shows in review: key lookup, request decode and validation,
the SSE relay per chunk, context rendering and the rate-limit check.

    .venv/bin/python -m pytest bench/test_hot_path_bench.py --benchmark-only

Not part of the suite (``testpaths`` is ``tests``); it asserts what each piece returns,
never how long it took. The end-to-end figures come from ``python -m bench.run``."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import msgspec
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from adapters.http.sse import event
from adapters.http.wire import ChatCompletionRequest
from adapters.inference.sse import sse_data
from domain.context import ContextBundle
from domain.documents import DocumentHit
from domain.keys import KeyRing
from domain.memory import MemoryHit

T = TypeVar("T")


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends, without an event loop (whose own overhead
    would otherwise be most of what is measured)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the coroutine suspended")


# --- auth -----------------------------------------------------------------------------
KEYS = [f"sk-bench-{n:05d}-{'x' * 24}" for n in range(1_000)]


@pytest.fixture(scope="module")
def keyring() -> KeyRing:
    return KeyRing.from_config(",".join(KEYS), production=True)


def test_auth_lookup_known_key(benchmark: BenchmarkFixture, keyring: KeyRing) -> None:
    principal = benchmark(keyring.lookup, KEYS[500])
    assert principal is not None


def test_auth_lookup_unknown_key(benchmark: BenchmarkFixture, keyring: KeyRing) -> None:
    assert benchmark(keyring.lookup, "sk-not-a-key-" + "y" * 24) is None


# --- request decode and validation ----------------------------------------------------
BODY = json.dumps(
    {
        "model": "llama-3.3-8b-instruct",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. " * 8},
            {"role": "user", "content": "What is the capital of France? " * 4},
            {"role": "assistant", "content": "The capital of France is Paris. " * 4},
            {"role": "user", "content": "And how many people live there? " * 4},
        ],
        "max_tokens": 256,
        "temperature": 0.7,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-1234",
    }
).encode()
_decode_request = msgspec.json.Decoder(ChatCompletionRequest).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def test_request_decode_validate(benchmark: BenchmarkFixture) -> None:
    """What ``POST /v1/chat/completions`` decodes: the validated struct (Litestar's
    ``data``) and the mapping that is forwarded."""
    benchmark.extra_info["body_bytes"] = len(BODY)

    def decode() -> tuple[ChatCompletionRequest, dict[str, Any]]:
        return _decode_request(BODY), _decode_object(BODY)

    request, body = benchmark(decode)
    assert len(request.messages) == 4
    assert body["stream"] is True


def test_request_validate_only(benchmark: BenchmarkFixture) -> None:
    request = benchmark(_decode_request, BODY)
    assert request.max_tokens == 256


# --- SSE relay, per chunk -------------------------------------------------------------
CHUNKS = 64
PAYLOADS = [
    json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "llama-3.3-8b-instruct",
            "choices": [{"index": 0, "delta": {"content": f" word{n}"}, "finish_reason": None}],
        },
        separators=(",", ":"),
    ).encode()
    for n in range(CHUNKS)
]
# As an upstream sends them: one event per network read, plus the end marker.
UPSTREAM_READS = [b"data: " + p + b"\n\n" for p in PAYLOADS] + [b"data: [DONE]\n\n"]


async def _reads(reads: list[bytes]) -> AsyncIterator[bytes]:
    for read in reads:
        yield read


async def _relayed(reads: list[bytes]) -> list[bytes]:
    return [event(payload) async for payload in sse_data(_reads(reads))]


def test_sse_relay_per_chunk(benchmark: BenchmarkFixture) -> None:
    """Split from the upstream's bytes and framed for the client, for a stream of
    ``CHUNKS`` chunks: divide the time by ``CHUNKS`` for the cost of one chunk."""
    benchmark.extra_info["chunks_per_round"] = CHUNKS
    relayed = benchmark(lambda: run_now(_relayed(UPSTREAM_READS)))
    assert relayed[0] == b"data: " + PAYLOADS[0] + b"\n\n"
    assert len(relayed) == CHUNKS


def test_sse_relay_split_reads(benchmark: BenchmarkFixture) -> None:
    """The same stream arriving in 7-byte reads: events cut across reads."""
    stream = b"".join(UPSTREAM_READS)
    reads = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    benchmark.extra_info["chunks_per_round"] = CHUNKS
    relayed = benchmark(lambda: run_now(_relayed(reads)))
    assert len(relayed) == CHUNKS


# --- context rendering ----------------------------------------------------------------
_SENTENCE = "The espresso machine needs descaling every three months with citric acid. "
MEMORIES = [
    MemoryHit(f"m{n}", f"User said: I prefer {n} shots of espresso. " * 6, 0.9 - n / 20,
              0.9 - n / 20, 1_760_000_000 + n * 86_400)
    for n in range(5)
]  # fmt: skip
DOCUMENTS = [
    DocumentHit(_SENTENCE * 12 + f"(part {n})", 0.8 - n / 20, {"source": f"manual-{n}.md"})
    for n in range(5)
]
RECENT = [f"Turn {n}: what about the milk frother?" for n in range(6)]


def _count_tokens(text: str) -> int:
    return len(text) // 4  # about 4 characters per token, like the embedder's vocabulary


def test_context_build_and_render(benchmark: BenchmarkFixture) -> None:
    """5 memories, 5 document chunks of ~230 tokens and 6 recent turns into a 1,500
    token budget (the default): two documents are dropped to fit."""

    def build() -> str | None:
        bundle = ContextBundle.build(
            MEMORIES, DOCUMENTS, token_budget=1_500, count_tokens=_count_tokens, recent=RECENT
        )
        return bundle.render()

    rendered = benchmark(build)
    assert rendered is not None
    assert _count_tokens(rendered) <= 1_500


# --- rate limit -----------------------------------------------------------------------
def _limiter_module() -> Any:
    try:
        return importlib.import_module("adapters.limits.in_process_limiter")
    except ImportError:
        pytest.skip("no in-process rate limiter in src yet")


def test_rate_limit_check(benchmark: BenchmarkFixture) -> None:
    """One admission with 10,000 keys known to the limiter."""
    from domain.limits import RateLimit

    limiter = _limiter_module().InProcessRateLimiter()
    # Limits no benchmark round can exhaust; one instant, so no key is evicted as full.
    limit = RateLimit(requests_per_minute=10**9, tokens_per_minute=10**12)
    for n in range(10_000):
        run_now(limiter.admit(f"key_{n:012d}", limit, 300, 1_000.0))
    admission = benchmark(lambda: run_now(limiter.admit("key_000000005000", limit, 300, 1_000.0)))
    assert admission.allowed

"""Streaming as a client sees it: time to first token and the gaps between tokens,
timed on a raw asyncio socket (no client library buffering in between) when each
event's closing blank line arrives."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.loadgen import Post, percentile


@dataclass(frozen=True)
class StreamTimes:
    ttft_ms: float  # request sent → first event carrying content
    offsets_ms: list[float]  # each content event, from the request


@dataclass(frozen=True)
class StreamSummary:
    streams: int
    tokens_per_stream: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    gap_p50_ms: float
    gap_p99_ms: float
    coalesced: int  # gaps under a quarter of the upstream's gap: chunks sent together
    lag_p50_ms: float  # a chunk's lateness against the rest of its stream (see summarize)
    lag_p99_ms: float


async def one_stream(post: Post) -> StreamTimes:
    url = urlsplit(post.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n"
        f"Content-Length: {len(post.body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in post.headers.items())
        + "\r\n"
    ).encode()
    started = time.perf_counter()
    writer.write(head + post.body)
    try:
        status_and_headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        if not status_and_headers.startswith(("http/1.1 200", "http/1.0 200")):
            raise RuntimeError(f"{post.url}: {status_and_headers.splitlines()[0]}")
        chunked = "transfer-encoding: chunked" in status_and_headers
        offsets: list[float] = []
        buffer = b""
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                data = await reader.readexactly(size) if size else b""
                await reader.readline()
            else:
                data = await reader.read(65536)
            if not data:
                break
            now = (time.perf_counter() - started) * 1000
            buffer += data.replace(b"\r\n", b"\n")
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                payload = event.partition(b"data:")[2].strip()
                if payload and payload != b"[DONE]" and _has_content(payload):
                    offsets.append(now)
    finally:
        writer.close()
    if not offsets:
        raise RuntimeError(f"{post.url}: a stream without content")
    return StreamTimes(offsets[0], offsets)


def _has_content(payload: bytes) -> bool:
    chunk = json.loads(payload)
    choices = chunk.get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def _many(post: Post, streams: int, concurrency: int) -> list[StreamTimes]:
    gate = asyncio.Semaphore(concurrency)

    async def bounded() -> StreamTimes:
        async with gate:
            return await one_stream(post)

    return list(await asyncio.gather(*(bounded() for _ in range(streams))))


def measure(post: Post, *, streams: int, concurrency: int, warmup: int = 2) -> list[StreamTimes]:
    if warmup:
        asyncio.run(_many(post, warmup, 1))
    return asyncio.run(_many(post, streams, concurrency))


def summarize(runs: list[StreamTimes], gap_ms: float) -> StreamSummary:
    """``lag``: how late each chunk after the first arrives against its own stream's
    steady pace: the residual of a straight line fitted to the chunks' arrival times
    (chunk number → time). A relay that holds chunks back, or sends them in batches,
    makes chunks late; the upstream's own jitter shows in the direct streams' figure. The
    first chunk is left out: its delay is the TTFT's."""
    ttfts = sorted(r.ttft_ms for r in runs)
    gaps = sorted(b - a for r in runs for a, b in zip(r.offsets_ms, r.offsets_ms[1:], strict=False))
    lags = sorted(lag for r in runs for lag in _residuals(r.offsets_ms[1:]))
    return StreamSummary(
        streams=len(runs),
        tokens_per_stream=statistics.mean(len(r.offsets_ms) for r in runs),
        ttft_p50_ms=percentile(ttfts, 50),
        ttft_p99_ms=percentile(ttfts, 99),
        gap_p50_ms=percentile(gaps, 50),
        gap_p99_ms=percentile(gaps, 99),
        coalesced=sum(1 for g in gaps if g < gap_ms / 4),
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
    )


def _residuals(offsets: list[float]) -> list[float]:
    if len(offsets) < 3:
        return []
    numbers = list(range(len(offsets)))
    slope, intercept = statistics.linear_regression(numbers, offsets)
    return [t - (intercept + slope * i) for i, t in zip(numbers, offsets, strict=True)]

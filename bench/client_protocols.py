"""What speaking the other clients' protocols costs: ``/v1/responses`` and
``/v1/messages`` (translated onto chat completions) against ``/v1/chat/completions``
itself, on the same gateway and the same fast fake upstream, in one run; and
``/v1/responses`` on a second gateway that forwards it to the upstream's own
``/v1/responses`` (``GATEWAY_RESPONSES_PASSTHROUGH``; ``store: false``).

    .venv/bin/python -m bench.client_protocols [--requests 1500] [--streams 150]

One gateway worker, the fake upstream answering at once (8 tokens). Requests go one at
a time over one keep-alive connection per route, the routes interleaved in a shuffled
order each round, so drift hits all of them alike. Figures, in ms:

- *non-streamed*: the client's latency, p50 / p90 / p99, and each route's p50 minus
  chat completions' (its added latency) and their ratio;
- *streamed*: time to the first content event (a raw socket, so no client library
  buffers), and whether the chunks are relayed as they come: the upstream streams 10
  tokens 5 ms apart and a gap under a quarter of that counts as bunched.

Writes bench/results/client_protocols.{md,json}; the servers' logs go to
bench/results/logs/client-protocols/."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.loadgen import percentile
from bench.processes import Fleet, stop_on_signals
from bench.servers import BENCH_KEY, FAST_MODEL, ROOT, STREAM_MODEL, start_fake_upstream
from bench.servers import start_gateway as start_bench_gateway

RESULTS = ROOT / "bench" / "results"
STREAM_TOKENS, STREAM_GAP_MS = 10, 5.0
MESSAGES = [{"role": "user", "content": "Say something."}]


def bodies(model: str, stream: bool) -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    """Route → (path, body, headers): the same question and bound on each protocol."""
    auth = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    return {
        "chat/completions": (
            "/v1/chat/completions",
            {"model": model, "messages": MESSAGES, "max_tokens": 64, "stream": stream},
            auth,
        ),
        "responses": (
            "/v1/responses",
            {
                "model": model,
                "input": "Say something.",
                "max_output_tokens": 64,
                "store": False,
                "stream": stream,
            },
            auth,
        ),
        "messages": (
            "/v1/messages",
            {"model": model, "messages": MESSAGES, "max_tokens": 64, "stream": stream},
            {"x-api-key": BENCH_KEY, "Content-Type": "application/json"},
        ),
    }


PASSTHROUGH = "responses (passthrough)"
SECOND_CHAT = "chat/completions (passthrough gateway)"


def routed(
    model: str, stream: bool, bases: tuple[str, str]
) -> dict[str, tuple[str, str, dict[str, Any], dict[str, str]]]:
    """Route → (gateway, path, body, headers): each route on the translating gateway,
    and /v1/responses once more on the gateway forwarding it to the upstream's own."""
    routes = {name: (bases[0], *route) for name, route in bodies(model, stream).items()}
    routes[PASSTHROUGH] = (bases[1], *bodies(model, stream)["responses"])
    # The control: the second gateway's own chat completions.
    routes[SECOND_CHAT] = (bases[1], *bodies(model, stream)["chat/completions"])
    return routes


def latencies(bases: tuple[str, str], rounds: int) -> dict[str, list[float]]:
    with_bases = routed(FAST_MODEL, False, bases)
    routes = {name: route[1:] for name, route in with_bases.items()}
    clients = {
        name: httpx.Client(base_url=route[0], timeout=30) for name, route in with_bases.items()
    }
    times: dict[str, list[float]] = {name: [] for name in routes}
    encoded = {name: json.dumps(body).encode() for name, (_, body, _) in routes.items()}
    try:
        for number in range(rounds + 50):
            order = list(routes)
            random.shuffle(order)
            for name in order:
                path, _, headers = routes[name]
                started = time.perf_counter()
                response = clients[name].post(path, content=encoded[name], headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
                if number >= 50:  # the first rounds warm up
                    times[name].append(elapsed)
    finally:
        for client in clients.values():
            client.close()
    return times


def _content(route: str, payload: bytes) -> bool:
    if not payload or payload == b"[DONE]":
        return False
    event = json.loads(payload)
    if route.startswith("chat/completions"):
        choices = event.get("choices") or [{}]
        return bool((choices[0].get("delta") or {}).get("content"))
    if route == "messages":
        return event.get("type") == "content_block_delta"
    return event.get("type") == "response.output_text.delta"


async def one_stream(
    base: str, route: str, path: str, body: bytes, headers: dict[str, str]
) -> list[float]:
    """Each content event's arrival (ms from the request), on a raw socket."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    started = time.perf_counter()
    writer.write(head + body)
    offsets: list[float] = []
    try:
        status = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        if not status.startswith("http/1.1 200"):
            raise RuntimeError(f"{path}: {status.splitlines()[0]}")
        chunked = "transfer-encoding: chunked" in status
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
                for line in event.split(b"\n"):
                    if line.startswith(b"data:") and _content(route, line[5:].strip()):
                        offsets.append(now)
    finally:
        writer.close()
    return offsets


async def streams(bases: tuple[str, str], count: int) -> dict[str, list[list[float]]]:
    routes = routed(STREAM_MODEL, True, bases)
    found: dict[str, list[list[float]]] = {name: [] for name in routes}
    for number in range(count + 10):
        order = list(routes)
        random.shuffle(order)
        for name in order:
            base, path, body, headers = routes[name]
            offsets = await one_stream(base, name, path, json.dumps(body).encode(), headers)
            if number >= 10:
                found[name].append(offsets)
    return found


def summarize(
    times: dict[str, list[float]], streamed: dict[str, list[list[float]]]
) -> dict[str, Any]:
    chat_p50 = statistics.median(times["chat/completions"])
    summary: dict[str, Any] = {}
    for name, values in times.items():
        ordered = sorted(values)
        p50 = statistics.median(ordered)
        offsets = streamed[name]
        firsts = sorted(o[0] for o in offsets if o)
        gaps = [b - a for o in offsets for a, b in itertools.pairwise(o)]
        summary[name] = {
            "requests": len(values),
            "p50_ms": round(p50, 3),
            "p90_ms": round(percentile(ordered, 90), 3),
            "p99_ms": round(percentile(ordered, 99), 3),
            "added_p50_ms": round(p50 - chat_p50, 3),
            "ratio_p50": round(p50 / chat_p50, 3),
            "streams": len(offsets),
            "tokens_per_stream": round(statistics.mean(len(o) for o in offsets), 2),
            "ttft_p50_ms": round(statistics.median(firsts), 3),
            "ttft_p99_ms": round(percentile(firsts, 99), 3),
            "gap_p50_ms": round(statistics.median(gaps), 3) if gaps else None,
            "bunched_gaps": sum(1 for g in gaps if g < STREAM_GAP_MS / 4),
            "gaps": len(gaps),
        }
    chat_ttft = summary["chat/completions"]["ttft_p50_ms"]
    for values in summary.values():
        values["ttft_added_p50_ms"] = round(values["ttft_p50_ms"] - chat_ttft, 3)
    return summary


def report(summary: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Client protocols against chat completions (one run, same gateway and upstream)",
        "",
        f"`python -m bench.client_protocols --requests {args.requests} --streams {args.streams}`"
        " — one gateway worker, the fake upstream answering at once; requests one at a time,"
        " routes interleaved. *passthrough*: a second gateway forwarding /v1/responses"
        " (`store: false`) to the upstream's own.",
        "",
        "| route | p50 ms | p90 ms | p99 ms | added p50 ms | p50 ratio | TTFT p50 ms | "
        "TTFT added p50 ms | tokens/stream | bunched gaps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in summary.items():
        lines.append(
            f"| /v1/{name} | {v['p50_ms']} | {v['p90_ms']} | {v['p99_ms']} | "
            f"{v['added_p50_ms']:+} | {v['ratio_p50']} | {v['ttft_p50_ms']} | "
            f"{v['ttft_added_p50_ms']:+} | {v['tokens_per_stream']} | "
            f"{v['bunched_gaps']} of {v['gaps']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="per route, non-streamed")
    parser.add_argument("--streams", type=int, default=150, help="per route, streamed")
    args = parser.parse_args()
    stop_on_signals()
    random.seed(17)
    logs = RESULTS / "logs" / "client-protocols"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    with Fleet(logs) as fleet:
        fast = start_fake_upstream(fleet, "fake-fast", FAST_MODEL, tokens=8, gap_ms=0, cores=None)
        slow = start_fake_upstream(
            fleet, "fake-stream", STREAM_MODEL, tokens=STREAM_TOKENS, gap_ms=STREAM_GAP_MS,
            cores=None,
        )  # fmt: skip
        gateway = start_bench_gateway(fleet, [fast, slow], cores=None)
        forwarding = start_bench_gateway(
            fleet, [fast, slow], cores=None, name="gateway-passthrough",
            extra_env={"GATEWAY_RESPONSES_PASSTHROUGH": f"{fast.base_url},{slow.base_url}"},
        )  # fmt: skip
        bases = (gateway.base_url, forwarding.base_url)
        times = latencies(bases, args.requests)
        streamed = asyncio.run(streams(bases, args.streams))
    summary = summarize(times, streamed)
    text = report(summary, args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "client_protocols.md").write_text(text)
    (RESULTS / "client_protocols.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()

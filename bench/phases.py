"""The phases of a benchmark run, each measuring every target the same way:
throughput (wrk), latency at fixed rates (h2load), streaming, and the gateway's memory
over a long run."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import loadgen, report, streaming
from bench.processes import children, cpu_seconds, rss_kib
from bench.servers import BENCH_KEY, FAST_MODEL, STREAM_MODEL, Target


@dataclass(frozen=True)
class Plan:
    mode: str
    wrk_s: float
    connections: int
    rates: tuple[int, ...]
    rate_s: float
    streams: int
    stream_concurrency: int
    stream_tokens: int
    gap_ms: float
    soak_requests: int


# 25 req/s: a rate every target sustains (the latency each adds when not busy).
FULL = Plan("full", 10, 32, (25, 100, 500, 1000), 8, 48, 8, 50, 20, 100_000)
QUICK = Plan("quick", 4, 32, (25, 100, 500, 1000), 4, 16, 4, 20, 20, 10_000)
# LiteLLM is not asked for rates above twice its maximum throughput: that would only
# measure its queue, for minutes.
LITELLM_RATE_CAP = 2.0


def chat_post(
    target: Target, model: str, *, stream: bool = False, max_tokens: int = 64
) -> loadgen.Post:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello! How are you today?"},
        ],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    return loadgen.Post(
        target.chat_url,
        json.dumps(body, separators=(",", ":")).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"},
    )


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def measure(
    plan: Plan, targets: dict[str, Target], stream_direct: Target, cores: str | None, work: Path
) -> dict[str, Any]:
    """Every phase against every target; ``cores``: where the load generator runs."""
    posts = {name: chat_post(t, FAST_MODEL) for name, t in targets.items()}
    for name, post in posts.items():
        say(f"warm-up {name}")
        loadgen.wrk(post, connections=plan.connections, duration_s=2, cores=cores, work=work)
    throughput = throughput_phase(plan, targets, posts, cores, work)
    rps = {n: throughput[n]["rps"] for n in targets}
    memory = {}
    results = {
        "throughput": throughput,
        "latency": latency_phase(plan, posts, rps, cores, work),
        "streaming": streaming_phase(plan, {**targets, "direct": stream_direct}),
        "memory": memory,
    }
    memory.update(soak(plan, targets["gateway"], posts["gateway"], cores, work))
    if "litellm" in targets:
        memory["litellm_rss_kib"] = rss_kib(targets["litellm"].pid)
    return results


def throughput_phase(
    plan: Plan,
    targets: dict[str, Target],
    posts: dict[str, loadgen.Post],
    cores: str | None,
    work: Path,
) -> dict[str, Any]:
    throughput: dict[str, Any] = {}
    for name, post in posts.items():
        say(f"throughput {name}: wrk {plan.connections} connections, {plan.wrk_s:g} s")
        cpu = cpu_seconds(targets[name].pid)
        figures = loadgen.wrk(
            post, connections=plan.connections, duration_s=plan.wrk_s, cores=cores, work=work
        )
        cpu_ms = (cpu_seconds(targets[name].pid) - cpu) * 1000 / figures.requests
        throughput[name] = {**dataclasses.asdict(figures), "cpu_ms_per_request": cpu_ms}
        say(f"  {figures.rps:,.0f} req/s, {figures.failed} failed, {cpu_ms:.3f} CPU ms/request")
    rps = {n: throughput[n]["rps"] for n in posts}
    cpu = {n: throughput[n]["cpu_ms_per_request"] for n in posts}
    throughput["ratios"] = {
        "gateway/direct": report.ratio(rps["gateway"], rps["direct"]),
        "gateway/litellm": report.ratio(rps["gateway"], rps.get("litellm")),
        "cpu_per_request litellm/gateway": report.ratio(cpu.get("litellm"), cpu["gateway"]),
    }
    return throughput


def latency_phase(
    plan: Plan,
    posts: dict[str, loadgen.Post],
    rps: dict[str, float],
    cores: str | None,
    work: Path,
) -> dict[str, Any]:
    latency: dict[str, Any] = {}
    for rate in plan.rates:
        row: dict[str, Any] = {"skipped": {}}
        for name, post in posts.items():
            if name == "litellm" and rate > LITELLM_RATE_CAP * rps["litellm"]:
                row["skipped"][name] = f"over capacity ({rps['litellm']:.0f} req/s max)"
                continue
            say(f"latency {name} at {rate} req/s, open loop, {plan.rate_s:g} s")
            figures = loadgen.open_loop(post, rate=rate, duration_s=plan.rate_s, cores=cores,
                                        work=work)  # fmt: skip
            row[name] = dataclasses.asdict(figures)
            say(f"  p50 {figures.p50_ms:.2f} ms, p99 {figures.p99_ms:.2f} ms, "
                f"{figures.achieved_rps:,.0f} req/s, {figures.failed} failed")  # fmt: skip
        row["added_ms"] = {
            name: {p: row[name][f"{p}_ms"] - row["direct"][f"{p}_ms"] for p in ("p50", "p99")}
            for name in ("gateway", "litellm")
            if name in row
        }
        latency[str(rate)] = row
    return latency


# Streams of 2 tokens, one at a time, per target: the TTFT the server adds when not busy.
SINGLE_STREAMS = 24


def streaming_phase(plan: Plan, targets: dict[str, Target]) -> dict[str, Any]:
    """``targets["direct"]`` is the streaming fake upstream. The targets take turns in
    rounds (two batches of streams each), so that a burst of other load on a shared
    machine falls on all of them rather than on whichever was being measured."""
    rounds = max(1, plan.streams // (2 * plan.stream_concurrency))
    times: dict[str, list[streaming.StreamTimes]] = {name: [] for name in targets}
    ttfts: dict[str, list[float]] = {name: [] for name in targets}
    for round_ in range(rounds):
        warmup = 2 if round_ == 0 else 0
        for name, target in targets.items():
            say(
                f"streaming {name}, round {round_ + 1}/{rounds}: {plan.streams // rounds} "
                f"streams, {plan.stream_concurrency} at a time"
            )
            times[name] += streaming.measure(
                chat_post(target, STREAM_MODEL, stream=True),
                streams=plan.streams // rounds,
                concurrency=plan.stream_concurrency,
                warmup=warmup,
            )
        # TTFT without the queueing of simultaneous starts: one short stream at a time.
        for name, target in targets.items():
            say(f"streaming {name}, round {round_ + 1}/{rounds}: TTFT, one stream at a time")
            runs = streaming.measure(
                chat_post(target, STREAM_MODEL, stream=True, max_tokens=2),
                streams=SINGLE_STREAMS // rounds,
                concurrency=1,
                warmup=warmup,
            )
            ttfts[name] += [r.ttft_ms for r in runs]
    single = {
        name: {"p50": loadgen.percentile(sorted(t), 50), "p99": loadgen.percentile(sorted(t), 99)}
        for name, t in ttfts.items()
    }
    results: dict[str, Any] = {
        "tokens": plan.stream_tokens,
        "gap_ms": plan.gap_ms,
        "concurrency": plan.stream_concurrency,
        "rounds": rounds,
        "ttft_one_at_a_time_ms": single,
    }
    for name in targets:
        results[name] = dataclasses.asdict(streaming.summarize(times[name], plan.gap_ms))
    keys = ("ttft_p50_ms", "ttft_p99_ms", "gap_p50_ms", "gap_p99_ms", "lag_p99_ms")
    results["added_ms"] = {
        name: {
            **{k.removesuffix("_ms"): results[name][k] - results["direct"][k] for k in keys},
            "ttft_one_at_a_time_p50": single[name]["p50"] - single["direct"]["p50"],
        }
        for name in ("gateway", "litellm")
        if name in targets
    }
    return results


def soak(
    plan: Plan, gateway: Target, post: loadgen.Post, cores: str | None, work: Path
) -> dict[str, Any]:
    """The gateway worker's VmRSS after warm-up and after ``soak_requests`` more."""
    workers = children(gateway.pid)
    if len(workers) != 1:
        raise RuntimeError(f"expected one gateway worker, found {workers}")
    say("memory: warm-up of 2,000 requests")
    loadgen.closed_count(post, requests=2_000, connections=plan.connections, cores=cores, work=work)
    before = rss_kib(workers[0])
    say(f"memory: {plan.soak_requests:,} requests (VmRSS {before:,} KiB before)")
    cpu = cpu_seconds(gateway.pid)
    good, failed, seconds = loadgen.closed_count(
        post, requests=plan.soak_requests, connections=plan.connections, cores=cores, work=work
    )
    cpu = cpu_seconds(gateway.pid) - cpu
    after = rss_kib(workers[0])
    say(f"  VmRSS {after:,} KiB after, {good / seconds:,.0f} req/s")
    return {
        "pid": workers[0],
        "requests": plan.soak_requests,
        "failed": failed,
        "soak_rps": good / seconds,
        "cpu_ms_per_request": cpu * 1000 / plan.soak_requests,
        "before_kib": before,
        "after_kib": after,
        "growth_pct": (after - before) / before * 100,
    }

"""A/B of the API's hot path between two source trees, with no load generator to install
(``bench.ab`` needs wrk and h2load): one fake upstream, a gateway from each tree, rounds
of sequential ``POST /v1/chat/completions`` in alternation (the order flips each round,
so a shared machine's load falls on both alike). Per tree: the gateway's CPU ms per
request (its process and children, from /proc) and the median latency, medians over the
rounds, and their ratio. Written to check that the web console's routes cost the API
nothing:

    git archive <base commit> src | tar -x -C /tmp/base
    .venv/bin/python -m bench.routes_ab /tmp/base/src [--requests 1500] [--rounds 6]

``--env NAME=VALUE`` (repeatable) configures both gateways alike, e.g.
``--env REDIS_URL=redis://127.0.0.1:6379/0`` for the production profile's limits, keys
and usage history in Redis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.conftest import ROOT, GatewayProcess, start_fake_upstream, start_gateway, stop

TICK = os.sysconf("SC_CLK_TCK")
LIMITS = '{"standard": {"requests_per_minute": 100000000, "tokens_per_minute": 100000000000}}'
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
KEY = {"Authorization": "Bearer sk-test-key-123"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / TICK
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += cpu_seconds(int(child))
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routes_ab", description=__doc__)
    parser.add_argument("base", type=Path, help="src tree of A")
    parser.add_argument("--candidate", type=Path, default=ROOT / "src", help="src tree of B")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    upstream = start_fake_upstream("--models", "fake-model")
    env = {"MAX_SERVE_URL": upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model",
           "GATEWAY_TIER_LIMITS": LIMITS}  # fmt: skip
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    gateways: dict[str, GatewayProcess] = {}
    try:
        for name, src in (("A", args.base), ("B", args.candidate)):
            tmp = Path(tempfile.mkdtemp(prefix=f"routes-ab-{name}-"))
            gateways[name] = start_gateway({**env, "PYTHONPATH": f"{src}:{ROOT}"}, tmp)
        cpu: dict[str, list[float]] = {name: [] for name in gateways}
        p50: dict[str, list[float]] = {name: [] for name in gateways}
        clients = {n: httpx.Client(base_url=g.url, headers=KEY) for n, g in gateways.items()}
        for client in clients.values():  # warm up
            for _ in range(200):
                client.post("/v1/chat/completions", json=BODY).raise_for_status()
        for round_ in range(args.rounds):
            order = sorted(clients, reverse=bool(round_ % 2))
            for name in order:
                pid = gateways[name].process.pid
                before = cpu_seconds(pid)
                latencies = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    clients[name].post("/v1/chat/completions", json=BODY).raise_for_status()
                    latencies.append(time.perf_counter() - started)
                cpu[name].append((cpu_seconds(pid) - before) * 1000 / args.requests)
                p50[name].append(statistics.median(latencies) * 1000)
        for name in gateways:
            rounds = ", ".join(f"{x:.3f}" for x in cpu[name])
            print(
                f"{name}: CPU {statistics.median(cpu[name]):.3f} ms/request ({rounds}); "
                f"latency p50 {statistics.median(p50[name]):.3f} ms"
            )
        print(
            f"B/A: CPU {statistics.median(cpu['B']) / statistics.median(cpu['A']):.3f}, "
            f"latency p50 {statistics.median(p50['B']) / statistics.median(p50['A']):.3f}"
        )
    finally:
        for gateway in gateways.values():
            stop(gateway.process)  # type: ignore[arg-type]
        stop(upstream.process)


if __name__ == "__main__":
    main()

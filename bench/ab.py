"""A/B: the gateway from several source trees (``src`` and patched copies), side by
side against one fake upstream, measured in turn, round after round, so that the load of
a shared machine falls on all alike. Medians over the rounds; the CPU time per request
is the figure other jobs disturb least.

    .venv/bin/python -m bench.ab /tmp/patched/src [/tmp/other/src ...] [--base src]
        [--rounds 5] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from bench import loadgen
from bench.phases import chat_post, say
from bench.processes import Fleet, cpu_seconds
from bench.run import RESULTS
from bench.servers import FAST_MODEL, ROOT, start_fake_upstream, start_gateway


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("candidates", type=Path, nargs="+", help="src trees: B, C, ...")
    parser.add_argument("--base", type=Path, default=ROOT / "src", help="src tree of A")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=int, default=200, help="open-loop rate, req/s")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0)
    args = parser.parse_args(argv)
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    cpus = os.cpu_count() or 1
    client, server = ("0", str(cpus - 1)) if cpus > 1 else (None, None)
    work = RESULTS / "logs" / "ab"
    work.mkdir(parents=True, exist_ok=True)
    trees = dict(zip("ABCDEFGH", [args.base, *args.candidates], strict=False))
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    with Fleet(work) as fleet:
        upstream = start_fake_upstream(fleet, "upstream", FAST_MODEL, tokens=8, gap_ms=0,
                                       cores=client)  # fmt: skip
        gateways = {}
        for name, src in trees.items():
            gateways[name] = start_gateway(
                fleet, [upstream], cores=server, src=src, name=f"gateway-{name}"
            )
        for target in gateways.values():
            loadgen.wrk(chat_post(target, FAST_MODEL), connections=32, duration_s=2,
                        cores=client, work=work)  # fmt: skip
        for round_ in range(args.rounds):
            for name, target in gateways.items():
                post = chat_post(target, FAST_MODEL)
                cpu = cpu_seconds(target.pid)
                tp = loadgen.wrk(post, connections=32, duration_s=args.seconds, cores=client,
                                 work=work)  # fmt: skip
                cpu_ms = (cpu_seconds(target.pid) - cpu) * 1000 / tp.requests
                lat = loadgen.open_loop(post, rate=args.rate, duration_s=args.seconds,
                                        cores=client, work=work)  # fmt: skip
                for key, value in (("rps", tp.rps), ("cpu_ms", cpu_ms), ("p50_ms", lat.p50_ms),
                                   ("p99_ms", lat.p99_ms)):  # fmt: skip
                    figures[name].setdefault(key, []).append(value)
                say(f"round {round_ + 1} {name}: {tp.rps:,.0f} req/s, {cpu_ms:.3f} CPU ms/req, "
                    f"at {args.rate} req/s "
                    f"p50 {lat.p50_ms:.2f} ms p99 {lat.p99_ms:.2f} ms")  # fmt: skip
    print(
        f"\nmedians over {args.rounds} rounds; " + ", ".join(f"{n} = {t}" for n, t in trees.items())
    )
    for key in ("rps", "cpu_ms", "p50_ms", "p99_ms"):
        base = statistics.median(figures["A"][key])
        cells = [f"{n} {statistics.median(figures[n][key]):9.3f}" for n in trees]
        ratios = [
            f"{n}/A {statistics.median(figures[n][key]) / base:6.3f}" for n in list(trees)[1:]
        ]
        print(f"{key:>7}: " + "  ".join(cells) + "  |  " + "  ".join(ratios))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # Every process the run started has been stopped by then (Fleet's exit).
        print("interrupted", flush=True)
        raise SystemExit(130) from None

"""The benchmark suite: the fake upstream direct, the gateway and LiteLLM's proxy,
measured in the same run with the same load generators.

    .venv/bin/python -m bench.run [--quick] [--no-litellm] [--gateway-src PATH]

Writes bench/results/results.{md,json}; the servers' logs go to bench/results/logs/.
See bench/README.md for what each figure means."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from bench import report
from bench.phases import FULL, QUICK, measure, say
from bench.processes import Fleet, stop_on_signals
from bench.servers import (
    FAST_MODEL,
    LITELLM_VERSION,
    ROOT,
    STREAM_MODEL,
    ensure_litellm,
    ensure_load_generators,
    start_fake_upstream,
    start_gateway,
    start_litellm,
)

RESULTS = ROOT / "bench" / "results"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, a 10k soak")
    parser.add_argument("--no-litellm", action="store_true", help="direct and gateway only")
    parser.add_argument("--no-pin", action="store_true", help="no taskset pinning")
    parser.add_argument("--gateway-src", type=Path, help="run the gateway from this src tree")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.* go")
    parser.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="niceness of the run and all it starts (%(default)s): on a shared machine, "
        "other jobs then disturb the figures less",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every child
    stop_on_signals()
    ensure_load_generators()
    litellm = None if args.no_litellm else ensure_litellm()
    cpus = os.cpu_count() or 1
    # Load generator and fake upstreams on the first core, the server measured on the
    # last: each server runs alone on its core while it is measured.
    cores = (None, None) if args.no_pin or cpus < 2 else ("0", str(cpus - 1))
    logs = RESULTS / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    started, load_before = time.time(), loadavg()
    with Fleet(logs) as fleet:
        say("starting the fake upstreams, the gateway and LiteLLM")
        fast = start_fake_upstream(fleet, "upstream-fast", FAST_MODEL, tokens=8, gap_ms=0,
                                   cores=cores[0])  # fmt: skip
        slow = start_fake_upstream(
            fleet, "upstream-stream", STREAM_MODEL, tokens=plan.stream_tokens,
            gap_ms=plan.gap_ms, cores=cores[0],
        )  # fmt: skip
        targets = {"direct": fast}
        targets["gateway"] = start_gateway(
            fleet, [fast, slow], cores=cores[1], src=args.gateway_src
        )
        if litellm is not None:
            models = {FAST_MODEL: fast, STREAM_MODEL: slow}
            targets["litellm"] = start_litellm(fleet, litellm, models, cores=cores[1])
        figures = measure(plan, targets, slow, cores[0], logs)
    results = {
        "meta": {
            "mode": plan.mode,
            "commit": _commit(),
            "gateway_src": str(args.gateway_src or ROOT / "src"),
            "cores": cpus,
            "cpu": _cpu(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "duration_s": time.time() - started,
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "pinning": "none" if cores[0] is None else
                       f"load generator + fake upstreams on CPU {cores[0]}, "
                       f"server on CPU {cores[1]}",
            "litellm_version": LITELLM_VERSION if litellm else None,
            "nice": args.nice,
            "connections": plan.connections,
            "plan": dataclasses.asdict(plan),
        },
        **figures,
    }  # fmt: skip
    results["targets"] = report.target_checks(results)
    as_json, as_md = report.write(results, args.out)
    print(as_md.read_text())
    say(f"wrote {as_json} and {as_md}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # Every process the run started has been stopped by then (Fleet's exit).
        print("interrupted", flush=True)
        raise SystemExit(130) from None

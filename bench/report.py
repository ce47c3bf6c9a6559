"""The results of one run as JSON (the record) and markdown (the table to read): each
figure per target, gateway/direct and gateway/LiteLLM ratios, and the issue's targets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

NAMES = {"direct": "direct", "gateway": "gateway", "litellm": "LiteLLM"}


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def target_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against this run's figures."""
    checks = []

    def check(name: str, measured: float | None, limit: float, above: bool = False) -> None:
        met = None if measured is None else (measured >= limit if above else measured <= limit)
        checks.append({"target": name, "measured": measured, "limit": limit, "met": met})

    at500 = results["latency"].get("500", {}).get("added_ms", {}).get("gateway")
    check("added latency p50 at 500 req/s (ms)", at500 and at500["p50"], 1.0)
    check("added latency p99 at 500 req/s (ms)", at500 and at500["p99"], 3.0)
    check("throughput gateway / LiteLLM", results["throughput"]["ratios"]["gateway/litellm"],
          10.0, above=True)  # fmt: skip
    added = results["streaming"].get("added_ms", {}).get("gateway", {})
    check("streaming TTFT added p50, one stream at a time (ms)",
          added.get("ttft_one_at_a_time_p50"), 2.0)  # fmt: skip
    check("chunk lateness p99 added to the upstream's (ms)", added.get("lag_p99"), 1.0)
    check("RSS growth over the soak (%)", results["memory"].get("growth_pct"), 5.0)
    return checks


def markdown(results: dict[str, Any]) -> str:
    meta, names = results["meta"], [n for n in NAMES if n in results["throughput"]]
    lines = [
        f"# Gateway benchmark ({meta['mode']})",
        "",
        f"Commit `{meta['commit']}`, {meta['cores']} cores ({meta['cpu']}), "
        f"{meta['started']}, {meta['duration_s']:.0f} s. Load average before/after: "
        f"{meta['loadavg_before']} / {meta['loadavg_after']} (a shared machine: other jobs "
        f"ran too). Pinning: {meta['pinning']}. LiteLLM {meta['litellm_version']}.",
        "",
        "## Non-streaming `/v1/chat/completions`",
        "",
        "| measure | " + " | ".join(NAMES[n] for n in names)
        + " | gateway/direct | gateway/LiteLLM |",
        "|---|" + "---:|" * (len(names) + 2),
    ]  # fmt: skip
    tp = results["throughput"]
    fraction, versus = tp["ratios"]["gateway/direct"], tp["ratios"]["gateway/litellm"]
    lines.append(
        f"| max throughput, wrk {meta['connections']} connections (req/s) | "
        + " | ".join(_num(tp[n]["rps"]) for n in names)
        + f" | {_num(fraction, 3)} | {_num(versus)}× |"
    )
    cpu_ratio = tp["ratios"]["cpu_per_request litellm/gateway"]
    lines.append(
        "| server CPU per request during that run (ms) | "
        + " | ".join(_num(tp[n]["cpu_ms_per_request"], 3) for n in names)
        + f" | – | {_num(cpu_ratio)}× less |"
    )
    for rate, row in results["latency"].items():
        for p in ("p50", "p99"):
            cells = []
            for n in names:
                figure = row.get(n)
                cells.append(
                    _num(figure[f"{p}_ms"]) if figure else row.get("skipped", {}).get(n, "–")
                )
            added = row["added_ms"].get("gateway", {}).get(p)
            versus = ratio((row.get("gateway") or {}).get(f"{p}_ms"),
                           (row.get("litellm") or {}).get(f"{p}_ms"))  # fmt: skip
            lines.append(
                f"| {p} at {rate} req/s (ms) | " + " | ".join(cells)
                + f" | +{_num(added)} ms | {_num(versus, 3)} |"
            )  # fmt: skip
    st = results["streaming"]
    lines += [
        "",
        f"## Streaming ({st['tokens']} tokens, {st['gap_ms']:g} ms apart upstream, "
        f"{st['concurrency']} streams at a time)",
        "",
        "| measure | " + " | ".join(NAMES[n] for n in names if n in st)
        + " | gateway − direct | LiteLLM − direct |",
        "|---|" + "---:|" * (sum(1 for n in names if n in st) + 2),
    ]  # fmt: skip
    single = st["ttft_one_at_a_time_ms"]
    lines.append(
        "| TTFT p50, one stream at a time (ms) | "
        + " | ".join(_num(single[n]["p50"]) for n in names if n in single)
        + "".join(f" | {_num(single[n]['p50'] - single['direct']['p50'])}" if n in single
                  else " | –" for n in ("gateway", "litellm"))
        + " |"
    )  # fmt: skip
    for key, label in (("ttft_p50_ms", "TTFT p50 (ms)"), ("ttft_p99_ms", "TTFT p99 (ms)"),
                       ("gap_p50_ms", "inter-token gap p50 (ms)"),
                       ("gap_p99_ms", "inter-token gap p99 (ms)"),
                       ("lag_p50_ms", "chunk lateness in its stream p50 (ms)"),
                       ("lag_p99_ms", "chunk lateness in its stream p99 (ms)"),
                       ("coalesced", "gaps < 1/4 of the upstream's")):  # fmt: skip
        cells = [_num(st[n][key]) for n in names if n in st]
        short = key.removesuffix("_ms")
        added = [_num(st["added_ms"].get(n, {}).get(short)) for n in ("gateway", "litellm")]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {added[0]} | {added[1]} |")
    mem = results["memory"]
    lines += [
        "",
        "## Gateway memory",
        "",
        f"Worker VmRSS after warm-up {_num(mem.get('before_kib'))} KiB, after "
        f"{_num(mem.get('requests'))} more requests {_num(mem.get('after_kib'))} KiB: "
        f"{_num(mem.get('growth_pct'))} % ({_num(mem.get('soak_rps'))} req/s, "
        f"{_num(mem.get('failed'))} failed).",
    ]
    if "litellm_rss_kib" in mem:
        lines.append(f"LiteLLM's VmRSS at the end: {_num(mem['litellm_rss_kib'])} KiB.")
    lines += [
        "",
        "## Targets (issue 8)",
        "",
        "| target | measured | limit | met |",
        "|---|---:|---:|---|",
    ]
    for c in results["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[c["met"]]
        lines.append(f"| {c['target']} | {_num(c['measured'])} | {_num(c['limit'])} | {met} |")
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    as_json, as_md = directory / "results.json", directory / "results.md"
    as_json.write_text(json.dumps(_finite(results), indent=2, allow_nan=False) + "\n")
    as_md.write_text(markdown(results))
    return as_json, as_md


def _finite(value: Any) -> Any:
    """NaN (a figure that could not be had) becomes null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

"""The load generators, driven the same way against every target: ``wrk`` for
closed-loop maximum throughput, ``h2load --rps`` for open-loop fixed request rates
(HTTP/1.1), with each request's latency read from h2load's per-request log."""

from __future__ import annotations

import math
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import pinned


@dataclass(frozen=True)
class Post:
    """The one request a load generator repeats."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Throughput:
    rps: float  # 2xx answers per second
    requests: int
    failed: int  # non-2xx answers, socket errors and timeouts
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Latency:
    rate: float  # asked for
    achieved_rps: float
    requests: int
    failed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank; ``p`` in [0, 100]."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS_MS[unit]


def _wrk_script(post: Post, path: Path) -> Path:
    # Long brackets: the body needs no escaping.
    headers = "".join(f'wrk.headers["{k}"] = [==[{v}]==]\n' for k, v in post.headers.items())
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = [==[{post.body.decode()}]==]\n{headers}',
        encoding="utf-8",
    )
    return path


def wrk(
    post: Post, *, connections: int, duration_s: float, cores: str | None, work: Path
) -> Throughput:
    """Closed loop: ``connections`` connections, each sending its next request as soon
    as the previous answer arrives, for ``duration_s``; one wrk thread."""
    script = _wrk_script(post, work / "wrk_post.lua")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
            "--timeout", "10s", "-s", str(script), post.url]  # fmt: skip
    out = subprocess.run(
        pinned(argv, cores), capture_output=True, text=True, check=True,
        timeout=duration_s + 60,
    ).stdout  # fmt: skip
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, seconds = int(done[1]), _ms(done[2] + done[3]) / 1000
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(non2xx[1]) if non2xx else 0
    failed = bad + (sum(int(n) for n in errors.groups()) if errors else 0)
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    return Throughput(
        rps=(requests - bad) / seconds,
        requests=requests,
        failed=failed,
        p50_ms=_ms(pct["50"]) if "50" in pct else math.nan,
        p99_ms=_ms(pct["99"]) if "99" in pct else math.nan,
    )


def _h2load_argv(post: Post, body_file: Path, log_file: Path) -> list[str]:
    body_file.write_bytes(post.body)
    log_file.unlink(missing_ok=True)  # h2load appends to an existing log
    headers = [arg for k, v in post.headers.items() for arg in ("-H", f"{k}: {v}")]
    return ["h2load", "--h1", "-t1", "-d", str(body_file), *headers, "--log-file",
            str(log_file)]  # fmt: skip


def _log_rows(log_file: Path) -> list[tuple[int, int, int]]:
    """(start µs since the epoch, status, µs to the end of the answer) per request."""
    rows = []
    for line in log_file.read_text().splitlines():
        start, status, micros = line.split("\t")[:3]
        rows.append((int(start), int(status), int(micros)))
    return sorted(rows)


def open_schedule(rate: float) -> tuple[int, int]:
    """(clients, milliseconds between client starts) for ``rate`` requests per second.

    h2load's ``--rps`` timers of clients started together fire together: bursts of one
    request per client. Clients started ``period`` ms apart with per-client interval
    ``clients / rate`` send at offsets ``i * period mod interval``; these are spread
    evenly, 1/rate apart, when ``rate * period / 1000`` is an integer coprime with the
    number of clients. Starts closer than 10 ms apart are not honoured by h2load."""
    clients = max(2, math.ceil(rate / 20))  # each client sends at most 20 req/s
    for period in range(10, 101):
        steps = rate * period / 1000
        if steps >= 1 and steps == int(steps):
            while math.gcd(clients, int(steps)) != 1:
                clients += 1
            return clients, period
    return clients, 10


def open_loop(
    post: Post, *, rate: float, duration_s: float, cores: str | None, work: Path
) -> Latency:
    """Open loop at ``rate`` requests/s: requests leave on h2load's schedule, not when
    an answer arrives (while a connection waits for an answer its next request waits
    too, so past saturation this turns closed loop). The ramp while clients start is
    left out of the figures."""
    clients, period_ms = open_schedule(rate)
    ramp_s = clients * period_ms / 1000
    total = math.ceil(rate * (duration_s + ramp_s))
    log_file = work / "h2load.log"
    argv = [*_h2load_argv(post, work / "h2load_body.json", log_file),
            "-c", str(clients), "-r", "1", "--rate-period", f"{period_ms}ms",
            "--rps", f"{rate / clients:.6f}", "-n", str(total), post.url]  # fmt: skip
    subprocess.run(
        pinned(argv, cores), capture_output=True, check=True, timeout=4 * duration_s + 60
    )
    rows = _log_rows(log_file)
    steady = [r for r in rows if r[0] >= rows[0][0] + ramp_s * 1e6] if rows else []
    good = sorted(r[2] / 1000 for r in steady if 200 <= r[1] < 300)
    span_s = (steady[-1][0] - steady[0][0]) / 1e6 if len(steady) > 1 else math.nan
    return Latency(
        rate=rate,
        achieved_rps=len(steady) / span_s if span_s else math.nan,
        requests=len(steady),
        failed=len(steady) - len(good) + (total - len(rows)),
        p50_ms=percentile(good, 50),
        p90_ms=percentile(good, 90),
        p99_ms=percentile(good, 99),
        max_ms=good[-1] if good else math.nan,
    )


def closed_count(
    post: Post, *, requests: int, connections: int, cores: str | None, work: Path
) -> tuple[int, int, float]:
    """``requests`` requests as fast as they are answered: (2xx, others, seconds)."""
    log_file = work / "h2load_count.log"
    argv = [*_h2load_argv(post, work / "h2load_body.json", log_file),
            "-c", str(connections), "-n", str(requests), post.url]  # fmt: skip
    started = time.monotonic()
    subprocess.run(pinned(argv, cores), capture_output=True, check=True, timeout=3600)
    seconds = time.monotonic() - started
    good = sum(1 for r in _log_rows(log_file) if 200 <= r[1] < 300)
    return good, requests - good, seconds

"""How much a multipart upload grows the gateway worker's resident memory, per MB
uploaded: this tree's ``src/`` (uploads streamed to a file) against another tree (the
baseline, e.g. main's, which read the whole form into memory), in one run.

    .venv/bin/python -m bench.upload_rss --baseline /work/main/src [--sizes 5 20 40]

For each tree and size, a fresh gateway process (``gateway serve --workers 1``, a
document limit above the largest size) gets one small warm-up upload, then one upload of
SIZE MB while a thread samples its worker's VmRSS every 2 ms; the growth is the peak
minus the RSS just before. The file is binary under a ``.md`` name, so both trees read
the whole body and then refuse the file (the baseline: 400, not UTF-8; this tree: 415,
not a text format): the figure is the upload path's alone, not chunking's or
embedding's. Results: ``bench/results/upload_rss.{json,md}``."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.processes import Fleet, children, rss_kib, stop_on_signals
from bench.servers import Target, start_gateway

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEY = "sk-upload-bench-0123456789"
MB = 1024 * 1024


class PeakRss:
    """The highest VmRSS of ``pid`` seen while the ``with`` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self.peak = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.2)  # the answer is sent before the request's objects are freed
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.002)


def _body(size: int) -> Iterator[bytes]:
    block = bytes([0, 1, 2, 255]) * (MB // 4)  # binary: no text format reads it
    for _ in range(size):
        yield block


def _upload(base: str, size_mb: int, name: str) -> int:
    boundary = "benchboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def content() -> Iterator[bytes]:
        yield head
        yield from _body(size_mb)
        yield tail

    length = len(head) + size_mb * MB + len(tail)
    response = httpx.post(
        f"{base}/v1/documents",
        content=content(),
        headers={
            "Authorization": f"Bearer {KEY}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        },
        timeout=300,
    )
    return response.status_code


def measure(fleet: Fleet, tree: str, src: Path | None, size_mb: int) -> dict[str, object]:
    name = f"{tree}-{size_mb}mb"
    gateway = start_gateway(
        fleet,
        [Target("none", "http://127.0.0.1:9", 0)],
        cores=None,
        src=src,
        name=name,
        extra_env={
            "API_KEYS": f"{KEY}:developer:bench",
            "GATEWAY_MAX_DOCUMENT_BYTES": str((size_mb + 8) * MB),
            "GATEWAY_BODY_READ_TIMEOUT_S": "300",
        },
    )
    [worker] = children(gateway.pid) or [gateway.pid]
    _upload(gateway.base_url, 1, "warm-up.md")
    time.sleep(0.5)
    before = rss_kib(worker)
    with PeakRss(worker) as watch:
        status = _upload(gateway.base_url, size_mb, "big.md")
    fleet.stop_all()
    growth_mib = (watch.peak - before) / 1024
    return {
        "tree": tree,
        "size_mb": size_mb,
        "status": status,
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(watch.peak / 1024, 1),
        "growth_mib": round(growth_mib, 1),
        "growth_per_mb": round(growth_mib / size_mb, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other tree's src/")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 40])
    args = parser.parse_args()
    stop_on_signals()
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "logs" / "upload_rss"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        for tree, src in (("baseline", args.baseline.resolve()), ("this", ROOT / "src")):
            with Fleet(logs) as fleet:
                row = measure(fleet, tree, src, size)
            print(json.dumps(row), flush=True)
            rows.append(row)
    (RESULTS / "upload_rss.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| tree | upload | status | RSS before | RSS peak | growth | growth per MB |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['tree']} | {r['size_mb']} MB | {r['status']} | {r['rss_before_mib']} MiB | "
        f"{r['rss_peak_mib']} MiB | {r['growth_mib']} MiB | {r['growth_per_mb']} MiB |"
        for r in rows
    ]
    machine = f"{os.cpu_count()} cores"
    (RESULTS / "upload_rss.md").write_text(
        f"# Upload RSS ({machine}; `python -m bench.upload_rss`)\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()

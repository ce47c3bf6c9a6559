"""``python test_gateway.py``, the operators' end-to-end check, against a live gateway."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, GatewayProcess, free_port
from tests.e2e.conftest import DEVELOPER_KEY, STANDARD_KEY

CHECKS = (
    "health", "auth: valid key", "auth: invalid key", "auth: missing key", "chat completions",
    "unified chat: basic", "unified chat: memory", "unified chat: RAG", "unified chat: full",
)  # fmt: skip


def run_check(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "GATEWAY_URL": url, "GATEWAY_API_KEY": STANDARD_KEY}
    return subprocess.run(
        # Timing is reported, not asserted: a slow check (SLOW) does not fail the run.
        [sys.executable, str(ROOT / "test_gateway.py"), *args],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_every_check_passes(fake_gateway: GatewayProcess) -> None:
    done = run_check(fake_gateway.url, "--developer-key", DEVELOPER_KEY)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for check in CHECKS:
        line = next((x for x in lines if f"  {check} " in x), None)
        assert line is not None, f"no line for {check}:\n{done.stdout}"
        assert line.split()[0] in ("PASS", "SLOW"), line
        assert "ms / 3000 ms" in line
    summary = next(x for x in lines if x.endswith(" failed"))
    passed, slow = (int(n) for n in summary.split()[0:4:2])
    assert passed + slow == len(CHECKS), summary
    assert summary.endswith(", 0 failed"), summary


def test_slow_checks_are_reported_apart_and_do_not_fail(fake_gateway: GatewayProcess) -> None:
    done = run_check(fake_gateway.url, "--target-ms", "0.001")
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = [line.split()[0] for line in done.stdout.splitlines() if "ms / 0 ms" in line]
    assert verdicts == ["SLOW"] * len(CHECKS)
    assert f"0 passed, {len(CHECKS)} slow (over 0 ms), 0 failed" in done.stdout


def test_exits_1_without_a_gateway() -> None:
    done = run_check(f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "no gateway answers" in done.stdout

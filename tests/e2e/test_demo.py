"""``examples/gateway_demo.py`` runs the six scenarios against a real gateway, and says
so plainly when there is none."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, GatewayProcess, free_port

DEMO = ROOT / "examples" / "gateway_demo.py"
SCENARIOS = (
    "1. Basic chat",
    "2. Memory storage",
    "3. Memory retrieval",
    "4. RAG integration",
    "5. Full integration",
    "6. Multi-turn conversation",
)


def run_demo(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_URL"] = url  # the keys stay the demo's defaults: the seed's dev keys
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.llama
def test_demo_runs_the_six_scenarios(embedded_gateway: GatewayProcess) -> None:
    result = run_demo(embedded_gateway.url, "--max-tokens", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    for title in SCENARIOS:
        assert title in result.stdout, result.stdout
    assert "timings" in result.stdout
    assert "Summary" in result.stdout


def test_demo_without_a_gateway_says_so_and_exits_1() -> None:
    result = run_demo(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "No gateway is running" in result.stderr
    assert "Traceback" not in result.stderr

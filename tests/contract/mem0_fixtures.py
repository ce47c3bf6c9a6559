"""``Mem0MemoryStore`` as the contract suites receive it, a stand-in for the inference
upstream that answers Mem0's fact extraction, and a guard that fails a test in which
anything tries to reach beyond the loopback. A pytest plugin: a test module loads it with
``pytest_plugins`` after ``tests.contract.memory_fixtures`` (whose ``StoreUnderTest`` it
builds), and imports from it only for type checking.

``mem0ai`` is the optional ``[mem0]`` extra: without it the Mem0 tests skip, or fail under
``CI=true``."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters.memory.mem0_store import Mem0MemoryStore
from tests.contract.memory_fixtures import DECAY, DIMENSION, StoreUnderTest
from tests.fakes.fake_embedder import FakeEmbedder

EXTRACTION_MODEL = "fake-model"


@pytest.fixture
def mem0_installed() -> None:
    """Skips the test when mem0ai is not installed, or fails it under ``CI=true``."""
    if importlib.util.find_spec("mem0") is None:  # found, not imported: the store imports it
        message = "mem0ai is not installed (pip install -e '.[mem0]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# --- nothing beyond the loopback ---------------------------------------------------------


def _loopback(host: object) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def outside_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every attempt to resolve or reach a host beyond the loopback fails, and is recorded;
    the test fails if there was any (the machine may be offline: an attempt that failed
    quietly would otherwise go unseen)."""
    attempts: list[object] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo,
    )  # fmt: skip

    def refuse(target: object) -> OSError:
        attempts.append(target)
        return OSError(f"the test refuses to reach {target!r}")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise refuse(address)
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise refuse(address)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
            raise socket.gaierror(str(refuse(host)))
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
    assert attempts == [], f"something tried to reach beyond the loopback: {attempts}"


# --- the store ---------------------------------------------------------------------------


@pytest.fixture
async def mem0_memory_store(
    tmp_path: Path, mem0_installed: None, outside_network: list[object]
) -> AsyncIterator[StoreUnderTest]:
    """Extraction off: raw text, as the MemoryStore contract stores it."""
    embedder = FakeEmbedder(DIMENSION)
    store = Mem0MemoryStore(tmp_path / "mem0", embedder, decay=DECAY)
    yield StoreUnderTest(store, embedder)
    await store.close()


# --- fact extraction ---------------------------------------------------------------------


@dataclass
class ExtractionUpstream:
    """An OpenAI-compatible ``/v1/chat/completions`` that answers each request with the next
    scripted reply: a list of facts, as Mem0 2.x's extraction JSON (``{"memory": [{"id",
    "text"}]}``), or an HTTP status to fail with. No script left: no facts. ``requests``
    holds every request body."""

    url: str
    replies: deque[list[str] | int] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(body)
        reply = self.replies.popleft() if self.replies else []
        if isinstance(reply, int):
            return reply, {"error": {"message": "scripted failure", "type": "server_error"}}
        facts = {"memory": [{"id": str(n), "text": text} for n, text in enumerate(reply)]}
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(facts)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def prompt(self, n: int) -> str:
        """Every message of the ``n``th request, as one text."""
        return "\n".join(m["content"] for m in self.requests[n]["messages"])


@pytest.fixture
def extraction_upstream() -> Iterator[ExtractionUpstream]:
    upstream = ExtractionUpstream(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = (
                upstream.answer(body)
                if self.path == "/v1/chat/completions"
                else (404, {"error": {"message": f"no route {self.path}"}})
            )
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    upstream.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="extraction-upstream")
    thread.start()
    yield upstream
    server.shutdown()
    server.server_close()
    thread.join()


@dataclass
class ExtractingStore:
    under_test: StoreUnderTest
    upstream: ExtractionUpstream
    directory: Path


@pytest.fixture
async def extracting_mem0_store(
    tmp_path: Path,
    mem0_installed: None,
    outside_network: list[object],
    extraction_upstream: ExtractionUpstream,
) -> AsyncIterator[ExtractingStore]:
    """Extraction on, against ``extraction_upstream``."""
    embedder = FakeEmbedder(DIMENSION)
    directory = tmp_path / "mem0"
    store = Mem0MemoryStore(
        directory,
        embedder,
        extraction=True,
        llm_base_url=extraction_upstream.url,
        llm_model=EXTRACTION_MODEL,
        decay=DECAY,
        timeout_s=10,
    )
    yield ExtractingStore(StoreUnderTest(store, embedder), extraction_upstream, directory)
    await store.close()

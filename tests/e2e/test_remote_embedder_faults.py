"""A remote embedder (EMBEDDINGS_URL) that fails: ``/v1/chat`` still answers, naming the
embedding stage; once its circuit is open the gateway stops waiting on it (refused at
once, the server not asked), ``/health`` and the metrics say so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, start_fake_upstream, stop
from tests.e2e.clients import api_client, upstream_events
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.test_unified_chat import chat
from tests.in_process import InProcessGateway, in_process_gateway


@pytest.fixture(scope="module")
def embeddings_server() -> Iterator[FakeUpstream]:
    """Serves the chat model and the embedding model (``/v1/embeddings``)."""
    server = start_fake_upstream("--models", "fake-model,fake-embedder")
    yield server
    stop(server.process)


@pytest.fixture(scope="module")
def gateway(
    embeddings_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    env = {
        "MAX_SERVE_URL": embeddings_server.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "EMBEDDINGS_URL": embeddings_server.url,
        "EMBEDDINGS_MODEL": "fake-embedder",
        "GATEWAY_UPSTREAM_RETRIES": "0",
        "GATEWAY_CIRCUIT_FAILURES": "2",
        "GATEWAY_CIRCUIT_COOLDOWN_S": "600",
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("remote-embedder")) as gateway:
        yield gateway


def embedding_failure(answer: dict[str, Any]) -> str | None:
    return next(
        (d["reason"] for d in answer["metadata"]["degraded"] if d["stage"] == "embedding"), None
    )


def embedded(server: FakeUpstream) -> int:
    return int(server.stats()["embedding_requests"])  # type: ignore[call-overload]


def test_a_failing_embedder_is_skipped_at_once_once_its_circuit_opens(
    gateway: InProcessGateway, embeddings_server: FakeUpstream
) -> None:
    with api_client(gateway) as client:
        assert embedding_failure(chat(client, "Can orders be returned?")) is None

        httpx.post(
            f"http://127.0.0.1:{embeddings_server.port}/_fake/embeddings_outage",
            json={"status": 500},
        )
        for _ in range(2):
            reason = embedding_failure(chat(client, "Can orders be returned?"))
            assert reason is not None
            assert "failed with status 500" in reason

        before = embedded(embeddings_server)
        answer = chat(client, "Can orders be returned?")
        reason = embedding_failure(answer)
        assert reason is not None
        assert "circuit is open" in reason
        assert answer["choices"][0]["message"]["content"], "the answer still comes"
        assert embedded(embeddings_server) == before, "the embedder was not asked"

    with api_client(gateway, ADMIN_KEY) as admin:
        services = admin.get("/health").json()["services"]
    health = services["embeddings"]
    assert health["status"] != "healthy"
    assert ("circuit_open", embeddings_server.url) in upstream_events(gateway)

"""The remote embedder as the gateway builds it (``ResilientEmbedder`` around
``OpenAICompatibleEmbedder``) against a real server process: what is safe to send again
is retried, a server that keeps failing has its circuit opened (refused at once, so that
retrieval is skipped without waiting on it), and closed again once it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.inference.openai_embedder import OpenAICompatibleEmbedder
from adapters.inference.resilient_embedder import ResilientEmbedder
from domain.circuit import CircuitBreaker, CircuitState
from domain.errors import EmbeddingUnavailable
from domain.health import Status
from tests.conftest import FakeUpstream, free_port, start_fake_upstream, stop
from tests.fakes.fake_upstream import EMBEDDING_DIMENSION


class RecordingTelemetry:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, name: str, target: str, **fields: object) -> None:
        self.events.append((name, target))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture
def server() -> Iterator[FakeUpstream]:
    upstream = start_fake_upstream("--model", "fake-embedder")
    yield upstream
    stop(upstream.process)


def outage(server: FakeUpstream, status: int, requests: int = 0) -> None:
    httpx.post(
        f"http://127.0.0.1:{server.port}/_fake/embeddings_outage",
        json={"status": status, "requests": requests},
    )


def sent(server: FakeUpstream) -> int:
    return int(server.stats()["embedding_requests"])  # type: ignore[call-overload]


def embedder(
    url: str, client: httpx.AsyncClient, **options: Any
) -> tuple[ResilientEmbedder, RecordingTelemetry]:
    telemetry = RecordingTelemetry()
    remote = OpenAICompatibleEmbedder(
        url, client, model="fake-embedder", dimension=EMBEDDING_DIMENSION, timeout_s=5
    )
    return ResilientEmbedder(remote, name=remote.name, telemetry=telemetry, **options), telemetry


async def test_a_batch_the_server_did_no_work_on_is_sent_again(
    server: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    model, telemetry = embedder(server.url, http_client, retries=2)
    outage(server, 503, requests=2)
    before = sent(server)

    [vector] = await model.embed_documents(["the valve leaks"])

    assert len(vector) == EMBEDDING_DIMENSION
    assert sent(server) - before == 3
    assert telemetry.names == ["retry", "retry"]
    assert {target for _, target in telemetry.events} == {server.url}


@pytest.mark.parametrize(("status", "times"), [(502, 3), (503, 3), (429, 3), (500, 1), (400, 1)])
async def test_only_what_is_safe_to_send_again_is_retried(
    server: FakeUpstream, http_client: httpx.AsyncClient, status: int, times: int
) -> None:
    model, telemetry = embedder(server.url, http_client, retries=2)
    before = sent(server)
    with pytest.raises(EmbeddingUnavailable, match=str(status)):
        await model.embed_query(f"__status_{status}__")
    assert sent(server) - before == times
    assert telemetry.names.count("retry") == times - 1


async def test_a_refused_connection_is_retried_then_reported(
    http_client: httpx.AsyncClient,
) -> None:
    model, telemetry = embedder(f"http://127.0.0.1:{free_port()}", http_client, retries=2)
    with pytest.raises(EmbeddingUnavailable, match="refused the connection"):
        await model.embed_query("hi")
    assert telemetry.names == ["retry", "retry"]


async def test_the_circuit_opens_refuses_at_once_and_closes_after_a_good_probe(
    server: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    # Long enough that a loaded machine does not let the cooldown pass before the refusal.
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=2.0)
    model, telemetry = embedder(server.url, http_client, retries=0, breaker=breaker)
    outage(server, 500)
    for _ in range(2):
        with pytest.raises(EmbeddingUnavailable, match="failed with status 500"):
            await model.embed_query("hi")
    assert breaker.state is CircuitState.OPEN
    assert not model.accepting

    before = sent(server)
    with pytest.raises(EmbeddingUnavailable, match="circuit is open"):
        await model.embed_documents(["hi", "there"])
    assert sent(server) == before, "refused without reaching the server"

    outage(server, 0)
    health = await model.check()  # it answers again; requests stay refused until retried
    assert health.status is Status.DEGRADED
    assert health.detail is not None
    assert "circuit open" in health.detail
    assert server.url in health.detail

    await asyncio.sleep(2.05)
    assert model.accepting
    assert len(await model.embed_query("hi")) == EMBEDDING_DIMENSION
    assert breaker.state is CircuitState.CLOSED
    assert (await model.check()).status is Status.HEALTHY
    assert telemetry.names == ["circuit_open", "circuit_refused", "circuit_closed"]


async def test_a_refused_request_proves_the_server_works(
    server: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    """Its 4xx is this request's fault: it never opens the circuit, and a half-open
    probe it refuses closes it (else the circuit would stay half-open, refusing)."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=0.2)
    model, _ = embedder(server.url, http_client, retries=0, breaker=breaker)
    for _ in range(3):
        with pytest.raises(EmbeddingUnavailable, match="refused the request"):
            await model.embed_query("__status_400__")
    assert breaker.state is CircuitState.CLOSED

    with pytest.raises(EmbeddingUnavailable):
        await model.embed_query("__status_502__")
    assert breaker.state is CircuitState.OPEN
    await asyncio.sleep(0.25)
    with pytest.raises(EmbeddingUnavailable, match="refused the request"):
        await model.embed_query("__status_400__")
    assert breaker.state is CircuitState.CLOSED
    assert len(await model.embed_query("hi")) == EMBEDDING_DIMENSION


async def test_a_dropped_connection_fails_the_call_and_counts_against_the_server(
    server: FakeUpstream, http_client: httpx.AsyncClient
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30)
    model, _ = embedder(server.url, http_client, retries=2, breaker=breaker)
    before = sent(server)
    with pytest.raises(EmbeddingUnavailable):
        await model.embed_query("__drop__")
    # It may have done the work: not sent again.
    assert sent(server) - before == 1
    assert breaker.state is CircuitState.OPEN

"""Fair shares of the shared document embedder and bounded, cancellable ingestion, on
real gateway processes (the embedded MiniLM embedder, Qdrant Edge, the fake upstream):
a client that leaves and a SIGTERM need one. What a stopped gateway left on disk is
read by the app in process, on the same data directory."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess, start_gateway, stop
from tests.e2e.clients import Gateway, api_client, logged_request
from tests.e2e.conftest import UNLIMITED
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import in_process_gateway

BULK_KEY, OTHER_KEY = "sk-bulk", "sk-other"
KEYS = f"{BULK_KEY}:developer:bulk,{OTHER_KEY}:developer:other"
SENTENCE = "The quarterly report lists revenue, churn and the support backlog by region. "


def client(gateway: Gateway, key: str, timeout: float = 300) -> httpx.Client:
    return api_client(gateway, key, timeout=timeout)


def long_document(chunks: int) -> str:
    """About ``chunks`` chunks at the default chunk size (200 tokens)."""
    return "\n\n".join(f"Section {i}. " + SENTENCE * 12 for i in range(chunks))


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    started = start_gateway(
        {
            "MAX_SERVE_URL": fake_upstream.url,
            "API_KEYS": KEYS,
            "GATEWAY_TIER_LIMITS": UNLIMITED,
            "GATEWAY_EMBEDDINGS_MAX_INPUTS": "600",
            "GATEWAY_EMBEDDINGS_MAX_TOKENS": "60000",
            "GATEWAY_MAX_DOCUMENT_CHUNKS": "1500",
        },
        tmp_path_factory.mktemp("fair"),
    )
    yield started
    stop(started.process)  # type: ignore[arg-type]


def test_embedding_bounds_are_named(gateway: GatewayProcess) -> None:
    with client(gateway, OTHER_KEY) as c:
        too_many = c.post("/v1/embeddings", json={"input": ["a"] * 601})
        assert_openai_error(too_many, 400, param="input")
        assert "GATEWAY_EMBEDDINGS_MAX_INPUTS" in too_many.json()["error"]["message"]
        too_long = c.post("/v1/embeddings", json={"input": [SENTENCE * 100] * 60})
        assert_openai_error(too_long, 400, param="input")
        assert "GATEWAY_EMBEDDINGS_MAX_TOKENS" in too_long.json()["error"]["message"]
        within = c.post("/v1/embeddings", json={"input": [SENTENCE] * 10})
        assert within.status_code == 200, within.text
        assert within.json()["usage"]["prompt_tokens"] > 0


def test_a_document_past_the_chunk_limit_is_refused(gateway: GatewayProcess) -> None:
    source = f"big-{uuid.uuid4().hex[:8]}.md"
    with client(gateway, OTHER_KEY) as c:
        response = c.post("/v1/documents", json={"text": long_document(1600), "source": source})
        assert_openai_error(response, 400, param="text")
        assert "GATEWAY_MAX_DOCUMENT_CHUNKS" in response.json()["error"]["message"]
        listed = c.get("/v1/documents", params={"limit": 100}).json()["data"]
        assert source not in {d["source"] for d in listed}


@pytest.mark.parametrize(
    "disposition",
    [b'filename="notes\x00.md"', b'filename="notes\nforged.md"'],
    ids=["nul", "newline"],
)
def test_an_upload_name_with_control_characters_is_refused(
    gateway: GatewayProcess, disposition: bytes
) -> None:
    body = (
        b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; " + disposition
        + b"\r\nContent-Type: text/markdown\r\n\r\n# Notes\n\nSome text.\r\n--b0undary--\r\n"
    )  # fmt: skip
    with client(gateway, OTHER_KEY) as c:
        response = c.post(
            "/v1/documents",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        )
        assert_openai_error(response, 400, param="file")
        assert "control character" in response.json()["error"]["message"]


def test_one_tenants_bulk_embeddings_do_not_hold_back_another(gateway: GatewayProcess) -> None:
    """Three bulk requests of one tenant are running when another tenant asks for one
    vector: it is answered while the bulk work is still going on, not after all of it."""
    bulk = [f"{i}: " + SENTENCE * 3 for i in range(500)]
    finished: list[str] = []
    lock = threading.Lock()

    def flood() -> None:
        with client(gateway, BULK_KEY) as c:
            response = c.post("/v1/embeddings", json={"input": bulk})
        assert response.status_code == 200, response.text
        with lock:
            finished.append("bulk")

    with ThreadPoolExecutor(3) as pool:
        floods = [pool.submit(flood) for _ in range(3)]
        time.sleep(1.0)  # sequencing, not a measurement: the floods are queued first
        with client(gateway, OTHER_KEY) as c:
            small = c.post("/v1/embeddings", json={"input": "one short text"})
        assert small.status_code == 200, small.text
        with lock:
            bulk_done_before = len(finished)
        for f in floods:
            f.result()
    # Before, it queued behind every bulk request (in the order they came).
    assert bulk_done_before == 0, "the one-input request waited for bulk work"


def test_a_disconnected_client_stops_its_ingest(gateway: GatewayProcess) -> None:
    source = f"gone-{uuid.uuid4().hex[:8]}.md"
    request_id = f"gone-{uuid.uuid4().hex}"
    with client(gateway, BULK_KEY) as c, pytest.raises(httpx.ReadTimeout):
        # ~1,400 chunks: half a minute of embedding or more; the client leaves after 3 s.
        c.post(
            "/v1/documents",
            json={"text": long_document(1400), "source": source},
            headers={"X-Request-ID": request_id},
            timeout=httpx.Timeout(30.0, read=3.0),
        )
    # The gateway notices the client left and answers (to nobody) 499: the ingest stopped.
    (line,) = logged_request(gateway, request_id)
    assert line["status"] == 499
    with client(gateway, BULK_KEY) as c:
        listed = c.get("/v1/documents", params={"limit": 100}).json()["data"]
    assert source not in {d["source"] for d in listed}


def test_sigterm_stops_a_running_ingest_and_leaves_no_half_document(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "API_KEYS": KEYS,
        "GATEWAY_TIER_LIMITS": UNLIMITED,
        "GATEWAY_SHUTDOWN_GRACE_S": "2",
    }
    first = start_gateway(env, tmp_path)
    source = "interrupted.md"
    try:
        with client(first, BULK_KEY) as c:
            assert c.post("/v1/documents", json={"text": "an older version", "source": source})
        threading.Timer(6.0, first.process.send_signal, (signal.SIGTERM,)).start()
        with client(first, BULK_KEY) as c:
            # ~3,000 chunks: minutes of embedding; the signal comes in the middle of it.
            body = {"text": long_document(3000), "source": source}
            stopped = c.post("/v1/documents", json=body)
        assert_openai_error(stopped, 503, code="shutting_down")
        # Loosely bounded (the grace is 2 s): before, the process lived minutes longer.
        first.process.wait(timeout=30)
    finally:
        stop(first.process)  # type: ignore[arg-type]
    # Started again on the same data directory.
    with in_process_gateway(env, tmp_path) as second, client(second, BULK_KEY) as c:
        listed = c.get("/v1/documents", params={"limit": 100}).json()["data"]
        mine = [d for d in listed if d["source"] == source]
        assert [d["chunk_count"] for d in mine] == [1]  # the older version, whole
        hits = c.post("/v1/rag/search", json={"query": "quarterly report churn", "k": 5})
        assert hits.status_code == 200, hits.text
        assert all("Section" not in h["text"] for h in hits.json()["data"]), hits.text

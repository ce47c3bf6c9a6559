"""Request ids, metrics (JSON and Prometheus), the API's documentation and health,
through the app served in this process in front of the fake upstream; the access log
through a gateway process's log."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeUpstream, GatewayProcess, free_port
from tests.e2e.clients import CHAT_PATH, api_client, chat_body, logged_request
from tests.e2e.conftest import ADMIN_KEY, fake_env
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """The seed's dev keys in front of the fake upstream (as ``fake_gateway``)."""
    with in_process_gateway(
        fake_env(fake_upstream), tmp_path_factory.mktemp("observed")
    ) as gateway:
        yield gateway


def test_request_id_sent_is_echoed(gateway: InProcessGateway) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    with api_client(gateway) as client:
        response = client.get("/v1/models", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


def test_request_id_is_generated_when_absent(gateway: InProcessGateway) -> None:
    with api_client(gateway) as client:
        response = client.get("/v1/models")
    assert HEX_ID.match(response.headers["x-request-id"])


def test_invalid_request_id_is_replaced(gateway: InProcessGateway) -> None:
    with api_client(gateway) as client:
        response = client.get("/v1/models", headers={"X-Request-ID": "not a valid id"})
    assert HEX_ID.match(response.headers["x-request-id"])


def is_latency(summary: dict[str, Any]) -> bool:
    return all(isinstance(summary[p], int | float) and summary[p] >= 0 for p in PERCENTILES)


def test_metrics_json_counts_requests(gateway: InProcessGateway) -> None:
    # An admin sees every request, refused keys' too (other keys: their tenant's).
    with api_client(gateway, ADMIN_KEY) as client:
        before = client.get("/metrics").json()
        assert client.post(CHAT_PATH, json=chat_body("hi")).status_code == 200
        with api_client(gateway, key="sk-not-a-key") as stranger:
            assert stranger.get("/v1/models").status_code == 401
        after = client.get("/metrics").json()
    assert is_latency(after["latency"])
    chat = after["routes"][CHAT_PATH]
    assert is_latency(chat["latency"])
    assert chat["requests"] >= before["routes"].get(CHAT_PATH, {"requests": 0})["requests"] + 1
    assert after["requests"] >= before["requests"] + 2
    assert after["errors"] >= before["errors"] + 1
    assert after["auth_failures"] >= before["auth_failures"] + 1


def test_metrics_routes_are_path_templates(gateway: InProcessGateway) -> None:
    with api_client(gateway) as client:
        assert client.get("/v1/models/fake-model").status_code == 200
        routes = client.get("/metrics").json()["routes"]
    assert "/v1/models/{model_id}" in routes
    assert "/v1/models/fake-model" not in routes


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "prometheus"}, {}), ({}, {"Accept": "text/plain"})],
    ids=["query", "accept"],
)
def test_metrics_in_prometheus_text(
    gateway: InProcessGateway, params: dict[str, str], headers: dict[str, str]
) -> None:
    with api_client(gateway, ADMIN_KEY) as client:
        response = client.get("/metrics", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "gateway_requests_total{" in response.text
    assert "gateway_request_duration_seconds_bucket" in response.text


def test_one_json_log_line_per_request(fake_gateway: GatewayProcess) -> None:
    request_id = f"log-{uuid.uuid4().hex}"
    with api_client(fake_gateway) as client:
        client.post(CHAT_PATH, json=chat_body("hi"), headers={"X-Request-ID": request_id})
    lines = logged_request(fake_gateway, request_id)
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["route"] == CHAT_PATH
    assert line["status"] == 200
    assert isinstance(line["latency_ms"], int | float)
    assert line["key_id"].startswith("key_")


def resolved(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def test_openapi_documents_chat_completions(gateway: InProcessGateway) -> None:
    with api_client(gateway, key=None) as client:
        document = client.get("/openapi.json").json()
    operation = document["paths"][CHAT_PATH]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "messages" in resolved(schema, document)["properties"]


def test_models_are_listed_in_openai_shape(gateway: InProcessGateway) -> None:
    with api_client(gateway) as client:
        listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert {m["id"] for m in listing["data"]} >= {"fake-model", "fake-model-2"}
    assert all(m["object"] == "model" and isinstance(m["owned_by"], str) for m in listing["data"])


def test_health_reports_the_upstream(gateway: InProcessGateway) -> None:
    with api_client(gateway, key=None) as client:
        response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "healthy"
    assert health["services"]["max_serve"]["status"] == "healthy"


def test_unreachable_upstream_is_unhealthy_and_502(tmp_path: Path) -> None:
    # Nothing listens on a freshly freed port: connections are refused at once.
    env = {"MAX_SERVE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with in_process_gateway(env, tmp_path) as gateway, api_client(gateway) as client:
        health = client.get("/health")
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        chat = client.post(CHAT_PATH, json=chat_body("hi"))
        models = client.get("/v1/models")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert health.json()["services"]["max_serve"]["status"] == "unhealthy"
    assert ready.status_code == 503
    assert live.status_code == 200
    assert_openai_error(chat, 502)
    assert_openai_error(models, 502)

"""The HTTP edge of a real gateway: what any client may send gets a 4xx in OpenAI's
error body (never a 5xx), every 503 says when to come back, the server's own refusals
(target, headers, slow or abandoned bodies) are the gateway's, a port in use is one
line, every log line is JSON, and /metrics shows a key its own tenant only. One gateway
process serves them (the raw sockets, its port, its log and its stop need one); the
gateways of a single test (an open circuit, a backend down) are the app in process."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, FakeUpstream, GatewayProcess, free_port, start_gateway, stop
from tests.e2e.clients import CHAT_PATH, api_client, bearer, chat_body, logged_request
from tests.e2e.conftest import UNLIMITED
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import in_process_gateway

ADMIN = "sk-edge-admin-0001"
ACME = "sk-edge-acme-0002"
GLOBEX = "sk-edge-globex-0003"
BODY_TIMEOUT_S = 2
COOLDOWN_S = 7
SOCKET_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def edge_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    gateway = start_gateway(
        {
            "MAX_SERVE_URL": fake_upstream.url,
            "GATEWAY_DEFAULT_MODEL": "fake-model",
            "GATEWAY_LOG_FORMAT": "json",
            # Litestar's deprecation warnings at start: Python warnings to be logged.
            "PYTHONWARNINGS": "always",
            "GATEWAY_BODY_READ_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "GATEWAY_CIRCUIT_FAILURES": "100000",
            "GATEWAY_CIRCUIT_COOLDOWN_S": str(COOLDOWN_S),
            "GATEWAY_TIER_LIMITS": UNLIMITED,
            "API_KEYS": f"{ADMIN}:admin:acme,{ACME}:standard:acme,{GLOBEX}:standard:globex",
        },
        tmp_path_factory.mktemp("edge"),
    )
    yield gateway
    stop(gateway.process)  # type: ignore[arg-type]


def raw(gateway: GatewayProcess, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


def parsed(answer: bytes) -> httpx.Response:
    head, _, content = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=content)


# --- 1. every method ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/metrics", "/health"])
@pytest.mark.parametrize("key", [None, ACME], ids=["no-key", "key"])
def test_options_answers_allow(edge_gateway: GatewayProcess, path: str, key: str | None) -> None:
    response = httpx.options(f"{edge_gateway.url}{path}", headers=bearer(key) if key else {})
    assert response.status_code == 204, response.text
    assert "OPTIONS" in response.headers["allow"]


# --- 3. Retry-After on every 503 -------------------------------------------------------


def test_upstream_503_says_when_to_come_back(edge_gateway: GatewayProcess) -> None:
    response = httpx.post(
        f"{edge_gateway.url}{CHAT_PATH}", headers=bearer(ACME), json=chat_body("__status_503__")
    )
    assert_openai_error(response, 503)
    assert int(response.headers["retry-after"]) >= 1


def test_open_circuit_says_its_cooldown(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "GATEWAY_CIRCUIT_FAILURES": "1",
        "GATEWAY_CIRCUIT_COOLDOWN_S": str(COOLDOWN_S),
        "GATEWAY_UPSTREAM_RETRIES": "0",
    }
    with in_process_gateway(env, tmp_path) as gateway, api_client(gateway) as client:
        try:
            # An upstream that is broken (every request fails), not one bad request: only
            # that opens a circuit.
            httpx.post(f"http://127.0.0.1:{fake_upstream.port}/_fake/outage", json={"status": 500})
            assert client.post(CHAT_PATH, json=chat_body("hi")).status_code == 502
            refused = client.post(CHAT_PATH, json=chat_body("hi"))
            error = assert_openai_error(refused, 503)
            assert "circuit" in error["message"]
            assert refused.headers["retry-after"] == str(COOLDOWN_S)
        finally:
            httpx.post(f"http://127.0.0.1:{fake_upstream.port}/_fake/outage", json={"status": 0})


def test_backend_down_503_says_when_to_come_back(tmp_path: Path) -> None:
    env = {"MAX_SERVE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with in_process_gateway(env, tmp_path) as gateway, api_client(gateway, None) as client:
        for path in ("/health", "/health/ready"):
            response = client.get(path)
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1


# --- 2. a port in use -----------------------------------------------------------------


def serve_on(port: int, tmp: Path, upstream: FakeUpstream) -> subprocess.CompletedProcess[str]:
    env = {"MAX_SERVE_URL": upstream.url, "GATEWAY_DATA_DIR": str(tmp / "data")}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env={**_environment(), **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def assert_one_line_naming(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert str(port) in lines[0], lines
    assert "in use" in lines[0], lines


def test_port_held_by_another_program_is_one_line(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert_one_line_naming(serve_on(port, tmp_path, fake_upstream), port)


def test_port_of_a_running_gateway_is_one_line(
    edge_gateway: GatewayProcess, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The server binds with SO_REUSEPORT: without a check, both would share the port.
    assert_one_line_naming(serve_on(edge_gateway.port, tmp_path, fake_upstream), edge_gateway.port)


# --- 4. the server's own refusals -----------------------------------------------------


def test_long_target_is_414_in_openai_shape(edge_gateway: GatewayProcess) -> None:
    # Below the HTTP server's own limit (64 KiB, refused with an empty body).
    target = "/v1/models?q=" + "a" * 60_000
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw(edge_gateway, request.encode())
    assert_openai_error(parsed(answer), 414, code="uri_too_long")


def test_large_headers_are_431_in_openai_shape(edge_gateway: GatewayProcess) -> None:
    response = httpx.get(
        f"{edge_gateway.url}/v1/models", headers={**bearer(ACME), "X-Big": "a" * 100_000}
    )
    assert_openai_error(response, 431, code="headers_too_large")


def test_slow_body_is_408_not_held(edge_gateway: GatewayProcess) -> None:
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
    )
    received = bytearray()
    with socket.create_connection(("127.0.0.1", edge_gateway.port), timeout=1) as sock:
        sock.sendall(head.encode())
        # One byte every half second for up to 15 s (the body needs 1000): the gateway
        # answers within its deadline, long before the client would finish.
        for _ in range(30):
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                break
            sock.sendall(b" ")
        while readable and (chunk := sock.recv(65536)):
            received += chunk
            readable, _, _ = select.select([sock], [], [], 1)
    assert received, "no answer while the body trickled in"
    assert_openai_error(parsed(bytes(received)), 408, code="request_timeout")


def test_aborted_body_is_logged_499(edge_gateway: GatewayProcess) -> None:
    request_id = f"abort-{uuid.uuid4().hex}"
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n"
        f"X-Request-ID: {request_id}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", edge_gateway.port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"messages": [')
        time.sleep(0.3)
    (line,) = logged_request(edge_gateway, request_id)
    assert line["status"] == 499, line


@pytest.mark.parametrize("body", [b"", b"  \n"], ids=["empty", "blank"])
def test_empty_body_is_named(edge_gateway: GatewayProcess, body: bytes) -> None:
    response = httpx.post(
        f"{edge_gateway.url}{CHAT_PATH}",
        headers={**bearer(ACME), "Content-Type": "application/json"},
        content=body,
    )
    error = assert_openai_error(response, 400)
    assert error["message"] == "the request body is empty; expected a JSON object"


# --- 7. control characters in an uploaded file's name ---------------------------------


def upload(gateway: GatewayProcess, disposition: bytes, extra: bytes = b"") -> httpx.Response:
    boundary = b"edgeboundary"
    body = (
        b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; " + disposition
        + b"\r\nContent-Type: text/markdown\r\n\r\n# Notes\n\nhello\r\n" + extra
        + b"--" + boundary + b"--\r\n"
    )  # fmt: skip
    headers = {
        **bearer(ADMIN),
        "Content-Type": f"multipart/form-data; boundary={boundary.decode()}",
    }
    return httpx.post(f"{gateway.url}/v1/documents", headers=headers, content=body, timeout=60)


@pytest.mark.parametrize(
    "disposition",
    [
        pytest.param(b'filename="notes\x00.md"', id="nul"),
        pytest.param(b'filename="\x1b[31mred.md"', id="escape"),
        pytest.param(b'filename="tab\there.md"', id="tab"),
        pytest.param(b'filename="two\nlines.md"', id="newline"),
        pytest.param(b'filename="two%0Alines.md"', id="percent-encoded-newline"),
        pytest.param(b'filename="del\x7f.md"', id="delete"),
    ],
)
def test_control_characters_in_a_file_name_are_refused(
    edge_gateway: GatewayProcess, disposition: bytes
) -> None:
    assert_openai_error(upload(edge_gateway, disposition), 400, param="file")


def test_control_characters_in_the_source_field_are_refused(edge_gateway: GatewayProcess) -> None:
    source = (
        b'--edgeboundary\r\nContent-Disposition: form-data; name="source"\r\n\r\nforged\nline\r\n'
    )
    response = upload(edge_gateway, b'filename="fine.md"', source)
    assert_openai_error(response, 400, param="source")


def test_a_plain_file_name_is_its_source(edge_gateway: GatewayProcess) -> None:
    response = upload(edge_gateway, b'filename="plain-notes.md"')
    assert response.status_code == 201, response.text
    assert response.json()["data"][0]["source"] == "plain-notes.md"


# --- 6. /metrics per tenant -----------------------------------------------------------


def metrics(gateway: GatewayProcess, key: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/metrics", headers=bearer(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_metrics_show_a_standard_key_its_own_tenant(edge_gateway: GatewayProcess) -> None:
    before_globex = metrics(edge_gateway, GLOBEX)
    before_admin = metrics(edge_gateway, ADMIN)
    for _ in range(3):
        response = httpx.get(f"{edge_gateway.url}/v1/models", headers=bearer(ACME))
        assert response.status_code == 200
    after_globex = metrics(edge_gateway, GLOBEX)
    after_admin = metrics(edge_gateway, ADMIN)
    models = "/v1/models"
    # Globex sees its own /metrics reads, never acme's /v1/models.
    assert after_globex["routes"].get(models) == before_globex["routes"].get(models)
    assert after_globex["requests"] - before_globex["requests"] < 3
    assert after_globex["auth_failures"] == 0
    # An admin sees everything.
    seen = after_admin["routes"][models]["requests"]
    assert seen - before_admin["routes"].get(models, {"requests": 0})["requests"] >= 3


def test_prometheus_text_is_for_admins(edge_gateway: GatewayProcess) -> None:
    url = f"{edge_gateway.url}/metrics?format=prometheus"
    assert_openai_error(httpx.get(url, headers=bearer(ACME)), 403)
    response = httpx.get(url, headers=bearer(ADMIN))
    assert response.status_code == 200
    assert "gateway_requests_total{" in response.text


# --- 5. every log line is JSON (last: it stops the gateway) ---------------------------


def test_every_log_line_is_json(edge_gateway: GatewayProcess) -> None:
    # What logs: Python warnings (PYTHONWARNINGS=always), the server's own lines,
    # refusals, an upstream failure, the earlier tests' aborted body, a shutdown.
    url = edge_gateway.url
    httpx.options(f"{url}/v1/models")
    httpx.get(f"{url}/v1/models", headers=bearer("sk-wrong"))
    httpx.post(f"{url}{CHAT_PATH}", headers=bearer(ACME), json=chat_body("__garbage__"))
    raw(edge_gateway, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    edge_gateway.process.send_signal(signal.SIGTERM)
    assert edge_gateway.process.wait(30) == 0
    lines = edge_gateway.log().splitlines()
    not_json = []
    for line in lines:
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            not_json.append(line)
    assert not_json == []
    events = [json.loads(line) for line in lines]
    # The server's own lines and Python's warnings are among them, as JSON.
    loggers = {e.get("logger") for e in events}
    assert {"_granian", "py.warnings"} <= loggers, loggers

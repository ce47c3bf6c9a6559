"""Bearer keys: who gets in, what is public (on the app served in this process), what
never reaches the log (a gateway process's log), and the configurations the gateway
refuses to start with (the real command's exit and message for one of each kind)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.errors import ConfigurationError
from tests.conftest import FakeUpstream, GatewayProcess, free_port
from tests.e2e.clients import api_client, bearer, logged_request
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY, fake_env
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

DEV_KEYS = (STANDARD_KEY, ADMIN_KEY, DEVELOPER_KEY)
WRONG_KEY = "sk-wrong-secret-value-42"
PUBLIC_PATHS = ("/health", "/health/live", "/health/ready", "/docs", "/redoc", "/openapi.json")


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """The seed's dev keys in front of the fake upstream (as ``fake_gateway``)."""
    with in_process_gateway(fake_env(fake_upstream), tmp_path_factory.mktemp("auth")) as gateway:
        yield gateway


def test_missing_key_is_401_with_challenge(gateway: InProcessGateway) -> None:
    with api_client(gateway, key=None) as client:
        response = client.get("/v1/models")
    assert_openai_error(response, 401, code="invalid_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {WRONG_KEY}", "Basic xyz", "Bearer", f"Token {STANDARD_KEY}"],
    ids=["wrong-key", "basic", "bare-scheme", "other-scheme"],
)
def test_bad_authorization_is_401(gateway: InProcessGateway, authorization: str) -> None:
    with api_client(gateway, key=None) as client:
        response = client.get("/v1/models", headers={"Authorization": authorization})
    assert_openai_error(response, 401, code="invalid_api_key")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer sk-é-ü-ß".encode(),
        b"Bearer \xff\xfe\x80",
        b"Bearer " + b"a" * 8192,
    ],
    ids=["utf8", "invalid-utf8", "8kb"],
)
def test_odd_authorization_is_refused_never_5xx(
    fake_gateway: GatewayProcess, authorization: bytes
) -> None:
    # A process: the HTTP server reads these headers before the app does.
    with api_client(fake_gateway, key=None) as client:
        response = client.get("/v1/models", headers={"Authorization": authorization})
    assert response.status_code in (400, 401, 431), response.text
    assert_openai_error(response, response.status_code)


@pytest.mark.parametrize("key", DEV_KEYS)
def test_seed_dev_keys_work(gateway: InProcessGateway, key: str) -> None:
    with api_client(gateway, key=key) as client:
        assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_public_paths_need_no_key(gateway: InProcessGateway, path: str) -> None:
    with api_client(gateway, key=None) as client:
        assert client.get(path).status_code == 200


def test_metrics_need_a_key(gateway: InProcessGateway) -> None:
    with api_client(gateway, key=None) as client:
        assert_openai_error(client.get("/metrics"), 401)


def test_keys_are_never_logged(fake_gateway: GatewayProcess) -> None:
    request_ids = []
    with api_client(fake_gateway, key=None) as client:
        for key in (WRONG_KEY, *DEV_KEYS):
            request_id = uuid.uuid4().hex
            client.get("/v1/models", headers={**bearer(key), "X-Request-ID": request_id})
            request_ids.append(request_id)
    for request_id in request_ids:
        assert logged_request(fake_gateway, request_id), f"request {request_id} not logged"
    log = fake_gateway.log()
    for secret in (WRONG_KEY, *DEV_KEYS):
        assert secret not in log


def test_configured_keys_replace_the_dev_keys(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {"API_KEYS": "sk-a:standard,sk-b:admin:acme", "MAX_SERVE_URL": fake_upstream.url}
    statuses = {}
    with in_process_gateway(env, tmp_path) as gateway:
        for key in ("sk-a", "sk-b", STANDARD_KEY):
            with api_client(gateway, key=key) as client:
                statuses[key] = client.get("/v1/models")
    assert statuses["sk-a"].status_code == 200
    assert statuses["sk-b"].status_code == 200
    assert_openai_error(statuses[STANDARD_KEY], 401, code="invalid_api_key")


def refused_start(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``gateway serve`` expected to refuse to start (a hang fails on the timeout)."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_")
        and k not in ("API_KEYS", "MAX_SERVE_URL", "QDRANT_URL", "REDIS_URL")
    }
    environment.update({"GATEWAY_DATA_DIR": str(tmp / "data"), **env})
    command = [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1"]
    return subprocess.run(
        [*command, "--port", str(free_port()), *args],
        env=environment, cwd=tmp, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        # A setting refused as it is read, and one refused by the command's own checks.
        pytest.param({"GATEWAY_BOGUS": "1"}, (), "GATEWAY_BOGUS", id="unknown-setting"),
        pytest.param({}, ("--workers", "2"), "MAX_SERVE_URL", id="workers-embedded"),
    ],
)
def test_startup_refusal_names_the_setting(
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    env: dict[str, str],
    args: tuple[str, ...],
    named: str,
) -> None:
    # An upstream is configured (except where its absence is the point), so that a start
    # that is wrongly accepted does not load the embedded model.
    upstream = {} if args else {"MAX_SERVE_URL": fake_upstream.url}
    result = refused_start(tmp_path, {**upstream, **env}, *args)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({"GATEWAY_ENV": "production"}, "API_KEYS", id="production-no-keys"),
        pytest.param({"GATEWAY_PORT": "abc"}, "GATEWAY_PORT", id="malformed-port"),
    ],
)
def test_startup_refusal_in_process_names_the_setting(
    fake_upstream: FakeUpstream, tmp_path: Path, env: dict[str, str], named: str
) -> None:
    """The same refusals as a ``ConfigurationError`` (which the command prints without a
    traceback, as the test above checks of its kinds)."""
    with (
        pytest.raises(ConfigurationError) as refused,
        in_process_gateway({"MAX_SERVE_URL": fake_upstream.url, **env}, tmp_path),
    ):
        pass
    assert named in refused.value.message


def test_wrong_key_is_refused_before_validation(gateway: InProcessGateway) -> None:
    with api_client(gateway, key=WRONG_KEY) as client:
        response = client.post("/v1/chat/completions", json={"messages": []})
    # Authentication comes before validation: a stranger learns nothing of the API.
    assert_openai_error(response, 401)

"""A key's usage over time (``GET /v1/keys/{id}/usage``) over HTTP: two gateway processes
sharing a real Redis count into the same buckets (and flush what they counted as they
stop); the window, the tiers and the key's secret are checked as for the other key
routes, on the app served in this process."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess, start_gateway, stop
from tests.e2e.clients import Gateway, api_client, chat_body
from tests.e2e.conftest import ADMIN_KEY, STANDARD_KEY, fake_env, gateway_pair
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway


@pytest.fixture(scope="module")
def shared_pair(
    fake_upstream: FakeUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    # Processes: their logs are read (the key's secret is never in them).
    env = fake_env(fake_upstream, REDIS_URL=redis_url, QDRANT_URL="")
    with gateway_pair(env, tmp_path_factory, "usage") as pair:
        yield pair


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """One instance, no Redis: its usage counted in its own memory."""
    with in_process_gateway(fake_env(fake_upstream), tmp_path_factory.mktemp("usage")) as gateway:
        yield gateway


def usage(gateway: Gateway, key_id: str, **params: str) -> httpx.Response:
    with api_client(gateway, ADMIN_KEY) as client:
        return client.get(f"/v1/keys/{key_id}/usage", params=params)


def create_key(gateway: Gateway, **fields: object) -> httpx.Response:
    with api_client(gateway, ADMIN_KEY) as client:
        return client.post("/v1/keys", json=fields)


def use_key(gateways: tuple[Gateway, ...], key_id: str, secret: str) -> tuple[int, int]:
    """Three reads and two chats spread over the instances: (requests, tokens) spent."""
    tokens = 0
    for n in range(3):
        with api_client(gateways[n % len(gateways)], secret) as client:
            assert client.get("/v1/models").status_code == 200
    for n in range(2):
        with api_client(gateways[(n + 1) % len(gateways)], secret) as client:
            chat = client.post(
                "/v1/chat/completions",
                json=chat_body(f"hello {n}", model="fake-model", max_tokens=20),
            )
        assert chat.status_code == 200, chat.text
        tokens += chat.json()["usage"]["total_tokens"]
    return 5, tokens


def check_history(body: dict, key_id: str, window: str, requests: int, tokens: int) -> None:
    buckets, size = {"1h": (60, 60), "24h": (24, 3600)}[window]
    assert body["object"] == "api_key.usage_history"
    assert body["key_id"] == key_id
    assert body["window"] == window
    assert body["bucket_s"] == size
    assert len(body["data"]) == buckets
    starts = [b["start"] for b in body["data"]]
    assert starts == sorted(starts)
    assert {b - a for a, b in itertools.pairwise(starts)} == {size}
    assert (body["requests"], body["tokens"]) == (requests, tokens)
    assert sum(b["requests"] for b in body["data"]) == requests
    assert sum(b["tokens"] for b in body["data"]) == tokens


def test_instances_sharing_redis_count_into_one_history(
    shared_pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = shared_pair
    created = create_key(first, name="usage robot", tier="standard", token_quota=100000)
    assert created.status_code == 201, created.text
    key_id, secret = created.json()["id"], created.json()["key"]
    fresh = usage(second, key_id)
    assert fresh.status_code == 200, fresh.text
    check_history(fresh.json(), key_id, "1h", 0, 0)

    requests, tokens = use_key(shared_pair, key_id, secret)
    # Each instance flushes its counts every second: both see the total within a few.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = [usage(g, key_id).json()["requests"] for g in shared_pair]
        if seen == [requests, requests]:
            break
        time.sleep(0.2)
    for gateway in shared_pair:
        for window in ("1h", "24h"):
            answer = usage(gateway, key_id, window=window)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            check_history(body, key_id, window, requests, tokens)
            assert body["token_quota"] == 100000
            assert body["tokens_used_this_period"] == tokens  # the quota's own count
            assert secret not in answer.text
    # Nothing of the key's secret in Redis's keys either (only its id names them).
    for gateway in shared_pair:
        assert secret not in gateway.log()


def test_usage_history_in_process(gateway: InProcessGateway) -> None:
    created = create_key(gateway, name="usage local")
    key_id, secret = created.json()["id"], created.json()["key"]
    requests, tokens = use_key((gateway,), key_id, secret)
    answer = usage(gateway, key_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    check_history(body, key_id, "1h", requests, tokens)
    assert body["token_quota"] is None
    assert body["data"][-1]["requests"] >= 1  # the last bucket is now's
    assert secret not in json.dumps(body)


def test_bad_window_tiers_and_unknown_keys(gateway: InProcessGateway) -> None:
    key_id = create_key(gateway, name="usage checks").json()["id"]
    error = assert_openai_error(usage(gateway, key_id, window="7d"), 400)
    assert "window" in json.dumps(error)
    assert_openai_error(usage(gateway, "key_nonexistent"), 404, param="key_id")
    with api_client(gateway, STANDARD_KEY) as standard:
        assert_openai_error(standard.get(f"/v1/keys/{key_id}/usage"), 403)
    with api_client(gateway, key=None) as anonymous:
        assert_openai_error(anonymous.get(f"/v1/keys/{key_id}/usage"), 401)


def test_the_route_is_documented(gateway: InProcessGateway) -> None:
    with api_client(gateway, key=None) as client:
        schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/keys/{key_id}/usage"]["get"]
    assert {"400", "401", "403", "404"} <= set(operation["responses"])
    window = next(p for p in operation["parameters"] if p["name"] == "window")
    assert window["in"] == "query"
    assert json.dumps(window).count("24h") >= 1
    assert operation["security"]


def test_counts_not_yet_flushed_are_sent_at_shutdown(
    fake_upstream: FakeUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGTERM right after the requests (before the next flush): the gateway process
    flushes its counts as it stops; another instance (here, in this process) reads them."""
    env = fake_env(fake_upstream, REDIS_URL=redis_url, QDRANT_URL="")
    first = start_gateway(env, tmp_path_factory.mktemp("usage-stop-a"))
    try:
        created = create_key(first, name="stopped").json()
        with api_client(first, created["key"]) as client:
            for _ in range(4):
                assert client.get("/v1/models").status_code == 200
    finally:
        stop(first.process)  # type: ignore[arg-type]
    assert first.process.returncode == 0  # type: ignore[union-attr]
    with in_process_gateway(env, tmp_path_factory.mktemp("usage-stop-b")) as second:
        body = usage(second, created["id"]).json()
    assert body["requests"] == 4, body

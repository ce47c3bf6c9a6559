"""Rate limits that hold across instances, managed keys and per-key policy, over HTTP:
two gateway processes sharing a real Redis (their audit log is read), token quotas and
tiers on the app served in this process."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess
from tests.e2e.clients import api_client, bearer, chat_body
from tests.e2e.conftest import ADMIN_KEY, STANDARD_KEY, gateway_pair
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import in_process_gateway

TIGHT = '{"standard": {"requests_per_minute": 60, "tokens_per_minute": 1000000}}'


@pytest.fixture(scope="module")
def shared_pair(
    fake_upstream: FakeUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway instances sharing one Redis (limits, keys), 60 requests/min."""
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "REDIS_URL": redis_url,
        "QDRANT_URL": "",
        "GATEWAY_TIER_LIMITS": TIGHT,
    }
    with gateway_pair(env, tmp_path_factory, "gw") as pair:
        yield pair


async def fire(gateways: tuple[GatewayProcess, ...], key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        calls = [
            client.get(f"{gateways[n % len(gateways)].url}/v1/models", headers=bearer(key))
            for n in range(count)
        ]
        return list(await asyncio.gather(*calls))


def test_two_instances_sharing_redis_admit_no_more_than_the_limit(
    shared_pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    started = time.monotonic()
    responses = asyncio.run(fire(shared_pair, STANDARD_KEY, 300))
    elapsed = time.monotonic() - started
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(refused) == 300
    # The bucket holds 60 and refills one a second (60/min): while the burst lasts,
    # a few more may be admitted, never more than that refill.
    assert len(admitted) <= 60 + math.ceil(elapsed)
    assert len(admitted) >= 55, "the limit admits (almost) its whole budget"
    ok, no = admitted[0], refused[0]
    assert ok.headers["x-ratelimit-limit-requests"] == "60"
    assert int(ok.headers["x-ratelimit-remaining-requests"]) < 60
    assert ok.headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-limit-tokens" in ok.headers
    error = assert_openai_error(no, 429)
    assert error["code"] == "rate_limit_exceeded"
    assert int(no.headers["retry-after"]) >= 1
    assert no.headers["x-ratelimit-remaining-requests"] == "0"


def test_managed_keys_across_instances(
    shared_pair: tuple[GatewayProcess, GatewayProcess], fake_upstream: FakeUpstream
) -> None:
    first, second = shared_pair
    admin = bearer(ADMIN_KEY)
    created = httpx.post(
        f"{first.url}/v1/keys",
        headers=admin,
        json={"name": "ci robot", "tier": "standard", "tenant": "acme",
              "allowed_models": ["fake-model"], "max_tokens": 50, "token_quota": 100000},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    key = created.json()
    secret, key_id = key["key"], key["id"]
    assert secret.startswith("sk-gw-")

    # Usable on the other instance; its policy applies.
    chat = httpx.post(
        f"{second.url}/v1/chat/completions", headers=bearer(secret),
        json=chat_body("hello there", model="fake-model", max_tokens=20),
    )  # fmt: skip
    assert chat.status_code == 200, chat.text
    too_long = httpx.post(
        f"{second.url}/v1/chat/completions", headers=bearer(secret),
        json=chat_body("hi", model="fake-model", max_tokens=51),
    )  # fmt: skip
    assert_openai_error(too_long, 400, param="max_tokens")
    other_model = httpx.post(
        f"{second.url}/v1/chat/completions", headers=bearer(secret),
        json=chat_body("hi", model="fake-model-2"),
    )  # fmt: skip
    assert_openai_error(other_model, 403)

    # Admins see it, never its secret, with its usage this period.
    listed = httpx.get(f"{second.url}/v1/keys", headers=admin).json()
    assert key_id in [k["id"] for k in listed["data"]]
    assert secret not in json.dumps(listed)
    detail = httpx.get(f"{second.url}/v1/keys/{key_id}", headers=admin).json()
    assert detail["tokens_used_this_period"] > 0
    assert secret not in json.dumps(detail)
    assert_openai_error(httpx.get(f"{first.url}/v1/keys", headers=bearer(secret)), 403)

    # Revoked on one instance: refused on the other within a second or so.
    assert httpx.delete(f"{first.url}/v1/keys/{key_id}", headers=admin).status_code == 200
    deadline = time.monotonic() + 3
    status = 200
    while time.monotonic() < deadline and status != 401:
        status = httpx.get(f"{second.url}/v1/models", headers=bearer(secret)).status_code
        time.sleep(0.1)
    assert status == 401
    assert_openai_error(httpx.delete(f"{first.url}/v1/keys/{key_id}", headers=admin), 404)

    # Audit lines name who did what, never the secret.
    for gateway in shared_pair:
        assert secret not in gateway.log()
    audit = [json.loads(line) for line in first.log().splitlines()
             if line.startswith("{") and '"audit"' in line]  # fmt: skip
    actions = {(a["action"], a["target"]) for a in audit}
    assert {("key.created", key_id), ("key.revoked", key_id)} <= actions


def test_a_token_quota_once_spent_is_429(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {"MAX_SERVE_URL": fake_upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model"}
    with in_process_gateway(env, tmp_path) as gateway:
        with api_client(gateway, ADMIN_KEY) as admin:
            created = admin.post(
                "/v1/keys", json={"name": "small", "token_quota": 60, "quota_period": "day"}
            ).json()
        body = chat_body("one two three", model="fake-model", max_tokens=20)
        with api_client(gateway, created["key"]) as client:
            first = client.post("/v1/chat/completions", json=body)
            assert first.status_code == 200, first.text
            spent = None
            for _ in range(10):
                spent = client.post("/v1/chat/completions", json=body)
                if spent.status_code == 429:
                    break
        assert spent is not None
        error = assert_openai_error(spent, 429)
        assert error["code"] == "quota_exceeded"
        assert "quota" in error["message"]
        # Keys persist in the data directory's file (one instance), hashed.
        stored = (tmp_path / "data" / "keys.json").read_text()
        assert created["key"] not in stored


def test_standard_tier_cannot_manage_keys(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {"MAX_SERVE_URL": fake_upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model"}
    with in_process_gateway(env, tmp_path) as gateway, api_client(gateway) as client:
        response = client.post("/v1/keys", json={"name": "x"})
    assert_openai_error(response, 403)

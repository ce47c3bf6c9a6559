"""Limits that hold against a hostile key, over HTTP against real gateway processes:
per-key caps on every generating route, token quotas under concurrency (one process,
and two processes sharing a real Redis), reserved tenant names, revocation, weak keys in
production, and what a refusal tells the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.errors import ConfigurationError
from tests.conftest import FakeUpstream, GatewayProcess, free_port, start_gateway
from tests.e2e.clients import Gateway, api_client, async_api_client, chat_body
from tests.e2e.conftest import ADMIN_KEY, STANDARD_KEY, fake_env, gateway_pair
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

PARALLEL = 50


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    env = fake_env(fake_upstream, GATEWAY_CHAT_MAX_BUDGET_MS="120000")
    with in_process_gateway(env, tmp_path_factory.mktemp("hostile")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def pair(
    fake_upstream: FakeUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    env = fake_env(fake_upstream, REDIS_URL=redis_url, QDRANT_URL="")
    with gateway_pair(env, tmp_path_factory, "pair") as pair:
        yield pair


def create_key(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    with api_client(gateway, ADMIN_KEY) as client:
        response = client.post("/v1/keys", json={"name": "hostile", **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def used(gateway: Gateway, key_id: str) -> int:
    with api_client(gateway, ADMIN_KEY) as client:
        detail = client.get(f"/v1/keys/{key_id}")
    return int(detail.json()["tokens_used_this_period"])


def completions(gateway: Gateway, secret: str, body: dict[str, Any]) -> httpx.Response:
    with api_client(gateway, secret) as client:
        return client.post("/v1/chat/completions", json=body)


# --- caps on every generating route ---------------------------------------------------


def test_an_absent_max_tokens_gets_the_keys_cap(
    gateway: Gateway, fake_upstream: FakeUpstream
) -> None:
    secret = create_key(gateway, max_tokens=5)["key"]
    response = completions(gateway, secret, chat_body("hello"))
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] <= 5
    sent = fake_upstream.stats()["last_request"]
    assert isinstance(sent, dict)
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 5


def test_max_completion_tokens_is_held_to_the_cap_too(
    gateway: Gateway, fake_upstream: FakeUpstream
) -> None:
    secret = create_key(gateway, max_tokens=5)["key"]
    both = chat_body("hello", max_tokens=5, max_completion_tokens=100_000)
    assert_openai_error(completions(gateway, secret, both), 400, param="max_completion_tokens")
    alone = completions(gateway, secret, chat_body("hello", max_completion_tokens=100_000))
    assert_openai_error(alone, 400, param="max_completion_tokens")
    fits = completions(gateway, secret, chat_body("hello", max_tokens=9, max_completion_tokens=3))
    assert_openai_error(fits, 400, param="max_tokens")
    ok = completions(gateway, secret, chat_body("hello", max_completion_tokens=3))
    assert ok.status_code == 200, ok.text
    sent = fake_upstream.stats()["last_request"]
    assert isinstance(sent, dict)
    # One of the two reaches the upstream, never both.
    assert [k for k in ("max_tokens", "max_completion_tokens") if k in sent] == [
        "max_completion_tokens"
    ]
    assert sent["max_completion_tokens"] == 3


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 50),
        ("n", 0),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("stop", "x" * 1000),
        ("frequency_penalty", 2.5),
        ("presence_penalty", -3),
        ("top_logprobs", 21),
        ("temperature", 2.1),
        ("top_p", 1.5),
        ("logit_bias", {"42": 101}),
    ],
)
def test_parameters_outside_openais_ranges_are_refused_before_the_upstream(
    gateway: Gateway, fake_upstream: FakeUpstream, param: str, value: Any
) -> None:
    before = fake_upstream.stats()["requests"]
    response = completions(gateway, STANDARD_KEY, chat_body("hello", **{param: value}))
    error = assert_openai_error(response, 400)
    assert error["param"] is not None
    assert error["param"].split("[")[0].split(".")[0] == param, error
    assert fake_upstream.stats()["requests"] == before


def test_n_within_the_tier_bound_is_forwarded(
    gateway: Gateway, fake_upstream: FakeUpstream
) -> None:
    response = completions(gateway, STANDARD_KEY, chat_body("hello", n=2, stop=["a", "b"]))
    assert response.status_code == 200, response.text
    sent = fake_upstream.stats()["last_request"]
    assert isinstance(sent, dict)
    assert sent["n"] == 2


def test_the_unified_chat_holds_the_keys_cap(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    secret = create_key(gateway, max_tokens=5)["key"]
    body = {"messages": [{"role": "user", "content": "hi"}], "use_memory": False,
            "use_rag": False, "store_memory": False}  # fmt: skip
    with api_client(gateway, secret) as client:
        response = client.post("/v1/chat", json=body)
        assert response.status_code == 200, response.text
        sent = fake_upstream.stats()["last_request"]
        assert isinstance(sent, dict)
        assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 5
        too_many = client.post("/v1/chat", json={**body, "max_tokens": 6})
    assert_openai_error(too_many, 400, param="max_tokens")


def test_the_chat_latency_budget_follows_the_setting(gateway: Gateway) -> None:
    # GATEWAY_CHAT_MAX_BUDGET_MS is 120000 on this gateway: 90 s is within it.
    body = {"messages": [{"role": "user", "content": "hi"}], "use_memory": False,
            "use_rag": False, "store_memory": False}  # fmt: skip
    with api_client(gateway) as client:
        ok = client.post("/v1/chat", json={**body, "latency_budget_ms": 90_000})
        assert ok.status_code == 200, ok.text
        assert ok.json()["metadata"]["latency_budget_ms"] == 90_000
        over = client.post("/v1/chat", json={**body, "latency_budget_ms": 130_000})
    assert_openai_error(over, 400, param="latency_budget_ms")


# --- quotas under concurrency ---------------------------------------------------------


async def burst(
    gateways: list[Gateway], secret: str, count: int, prompt: str = "hello"
) -> list[httpx.Response]:
    """``count`` streamed requests at once, spread over ``gateways``."""
    body = chat_body(prompt, max_tokens=5, stream=True, stream_options={"include_usage": True})
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(async_api_client(g, secret)) for g in gateways]

        async def one(n: int) -> httpx.Response:
            client = clients[n % len(clients)]
            response = await client.post("/v1/chat/completions", json=body)
            await response.aread()
            return response

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def check_quota_burst(gateways: list[Gateway], quota: int) -> None:
    key = create_key(gateways[0], token_quota=quota, quota_period="day", max_tokens=5)
    responses = asyncio.run(burst(gateways, key["key"], PARALLEL))
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(refused) == PARALLEL, [r.text for r in responses]
    assert admitted, "the quota admits what fits"
    spent = used(gateways[0], key["id"])
    # Every request reserves its worst case (the prompt's bytes + 8 tokens a message,
    # + max_tokens) before it is admitted: nothing is overspent.
    print(f"quota {quota}: {len(admitted)} admitted of {PARALLEL}, {spent} tokens used")
    assert spent <= quota, f"{spent} tokens used of a quota of {quota}"
    for response in refused:
        error = assert_openai_error(response, 429, code="quota_exceeded")
        assert "quota" in error["message"]
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["x-should-retry"] == "false"


def test_a_token_quota_holds_against_parallel_requests(gateway: Gateway) -> None:
    check_quota_burst([gateway], 100)


@pytest.mark.redis
def test_a_token_quota_holds_across_two_instances_sharing_redis(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    check_quota_burst(list(pair), 50)


def test_a_prompt_beyond_its_estimate_cannot_overspend_a_quota(
    gateway: Gateway,
) -> None:
    """The fake upstream counts 8 prompt tokens where the 4-characters-a-token estimate
    says 3: the quota reserves the prompt's upper bound, so parallel requests still
    cannot spend more than it."""
    quota = 100
    key = create_key(gateway, token_quota=quota, quota_period="day", max_tokens=5)
    responses = asyncio.run(burst([gateway], key["key"], PARALLEL, "a b c d e f g h"))
    admitted = [r for r in responses if r.status_code == 200]
    spent = used(gateway, key["id"])
    print(f"prompt beyond its estimate: {len(admitted)} admitted, {spent} of {quota} used")
    assert admitted
    assert spent <= quota


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_refused_unified_chat_spends_nothing_streamed_or_not(
    gateway: Gateway, stream: bool
) -> None:
    """The upstream refuses the request (400) after retrieval: nothing was generated, so
    nothing is charged, whether the refusal is an answer or an ``error`` event after the
    stream's context event."""
    key = create_key(gateway, token_quota=10_000, quota_period="day", max_tokens=50)
    body = {
        "messages": [{"role": "user", "content": "__status_400__"}],
        "use_memory": False,
        "use_rag": False,
        "stream": stream,
    }
    with api_client(gateway, key["key"]) as client:
        response = client.post("/v1/chat", json=body)
    if stream:
        assert response.status_code == 200, response.text
        assert "event: context" in response.text
        assert "event: error" in response.text
    else:
        assert_openai_error(response, 400)
    assert used(gateway, key["id"]) == 0


def test_a_quota_keys_token_headers_report_its_quota(gateway: Gateway) -> None:
    key = create_key(gateway, token_quota=1000, quota_period="day", max_tokens=5)
    response = completions(gateway, key["key"], chat_body("hello"))
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-limit-tokens"] == "1000"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 1000


def test_a_rate_limit_refusal_says_what_its_headers_say(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    tight = '{"standard": {"requests_per_minute": 2, "tokens_per_minute": 1000000}}'
    env = fake_env(fake_upstream, GATEWAY_TIER_LIMITS=tight)
    with in_process_gateway(env, tmp_path) as gateway, api_client(gateway) as client:
        responses = [client.get("/v1/models") for _ in range(3)]
    refused = responses[-1]
    error = assert_openai_error(refused, 429)
    retry_after = refused.headers["retry-after"]
    assert f"retry after {retry_after} s" in error["message"], (error, refused.headers)
    assert refused.headers["x-ratelimit-reset-requests"] in error["message"]


# --- reserved tenants, global documents ---------------------------------------------


@pytest.mark.parametrize("tenant", ["*", "gateway:warm-up", "a:b"])
def test_reserved_tenant_names_are_refused_at_key_creation(gateway: Gateway, tenant: str) -> None:
    with api_client(gateway, ADMIN_KEY) as client:
        response = client.post(
            "/v1/keys", json={"name": "x", "tier": "developer", "tenant": tenant}
        )
    assert_openai_error(response, 400, param="tenant")


def test_a_reserved_tenant_in_api_keys_refuses_to_start(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match=r"API_KEYS.*tenant"):
        start_gateway(
            fake_env(fake_upstream, API_KEYS="sk-anything-long-enough-0123456789:developer:*"),
            tmp_path,
            ready_timeout=60,
        )


def test_a_key_of_tenant_star_from_before_cannot_touch_global_documents(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A key stored with tenant ``*`` (before the name was reserved) is no admin: its
    documents do not become global ones, and it cannot delete global ones."""
    from domain.keys import hash_key, key_id_for

    secret = "sk-gw-" + "legacy-star-tenant-key-0123456789abcdefghijk"[:43]
    digest = hash_key(secret)
    legacy = {"id": key_id_for(digest), "name": "legacy", "key_hash": digest,
              "tier": "developer", "tenant": "*", "created_at": 1.0}  # fmt: skip
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keys.json").write_text(json.dumps({"version": 1, "keys": [legacy]}))
    with (
        in_process_gateway(fake_env(fake_upstream), tmp_path) as gateway,
        api_client(gateway, ADMIN_KEY) as admin,
        api_client(gateway, secret) as legacy_key,
    ):
        body = {"text": "The global policy.", "source": "policy.md", "scope": "global"}
        created = admin.post("/v1/documents", json=body)
        assert created.status_code == 201, created.text
        global_id = created.json()["id"]
        takeover = legacy_key.post(
            "/v1/documents", json={"text": "Overwritten.", "source": "policy.md"}
        )
        assert_openai_error(takeover, 403)
        deleted = legacy_key.delete(f"/v1/documents/{global_id}")
        assert deleted.status_code in (403, 404), deleted.text
        listed = admin.get("/v1/documents").json()["data"]
        assert [d["id"] for d in listed if d["source"] == "policy.md"] == [global_id]


# --- revocation, weak keys, a store that is down --------------------------------------


def test_a_revoked_key_is_refused_at_once_by_the_instance_that_revoked_it(
    gateway: Gateway,
) -> None:
    key = create_key(gateway)
    with api_client(gateway, key["key"]) as client:
        assert client.get("/v1/models").status_code == 200  # now cached
        with api_client(gateway, ADMIN_KEY) as admin:
            revoked = admin.delete(f"/v1/keys/{key['id']}")
        assert revoked.status_code == 200, revoked.text
        assert_openai_error(client.get("/v1/models"), 401)


@pytest.mark.parametrize("api_keys", ["a", "a:admin", "short-key-0123456789", "x" * 40])
def test_production_refuses_weak_api_keys(
    fake_upstream: FakeUpstream, tmp_path: Path, api_keys: str
) -> None:
    env = fake_env(fake_upstream, GATEWAY_ENV="production", API_KEYS=api_keys)
    with pytest.raises(ConfigurationError, match=r"API_KEYS"), in_process_gateway(env, tmp_path):
        pass


def test_production_accepts_a_strong_api_key(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    strong = "sk-prod-7fQ2xL9mB4vT1cR8nW6yZ3kH5jD0pA"
    env = fake_env(fake_upstream, GATEWAY_ENV="production", API_KEYS=f"{strong}:admin")
    with in_process_gateway(env, tmp_path) as gateway:
        with api_client(gateway, strong) as client:
            assert client.get("/v1/models").status_code == 200
        with api_client(gateway, "a") as client:
            assert_openai_error(client.get("/v1/models"), 401)


@pytest.mark.redis
def test_an_unknown_key_is_401_while_redis_is_down(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A secret that cannot be a managed key is refused without asking the store; one
    that could be is 503 (the store cannot say)."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = fake_env(fake_upstream, REDIS_URL=dead, QDRANT_URL="")
    with in_process_gateway(env, tmp_path) as gateway:
        for secret, status in (("sk-not-a-key", 401), ("sk-gw-" + "A" * 43, 503)):
            with api_client(gateway, secret) as client:
                assert_openai_error(client.get("/v1/models"), status)
        with api_client(gateway) as client:
            assert client.get("/v1/models").status_code == 200

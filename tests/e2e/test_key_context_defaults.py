"""Memory and RAG by a managed key's default: an admin creates a key with ``context``
and an unmodified client (no X-Gateway-* header) gets the user's memories and the
tenant's documents; a header still overrides each default, off included. Against a
gateway keeping its keys in a file and one keeping them in Redis (the app served in
process, the official SDKs driving it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import FakeUpstream
from tests.e2e.clients import api_client, eventually
from tests.e2e.conftest import ADMIN_KEY, UNLIMITED
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, anthropic_client, in_process_gateway, openai_client

MODEL = "fake-model"


@pytest.fixture(scope="module", params=["file", "redis"])
def gateway(
    request: pytest.FixtureRequest,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessGateway]:
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": MODEL,
        "GATEWAY_TIER_LIMITS": UNLIMITED,
    }
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    tmp = tmp_path_factory.mktemp(f"key-context-{request.param}")
    with in_process_gateway(env, tmp) as started:
        handbook = f"handbook-{uuid.uuid4().hex[:8]}"
        with api_client(started, ADMIN_KEY, timeout=60) as admin:
            admin.post(
                "/v1/documents",
                json={"text": f"The {handbook}: the reactor coolant is heavy water.",
                      "source": f"{handbook}.md"},
            ).raise_for_status()  # fmt: skip
        yield started


def new_key(gateway: InProcessGateway, **context: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"agent-{uuid.uuid4().hex[:6]}"}
    if context:
        body["context"] = context
    with api_client(gateway, ADMIN_KEY) as admin:
        created = admin.post("/v1/keys", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def shown_key(gateway: InProcessGateway, key_id: str) -> dict[str, Any]:
    with api_client(gateway, ADMIN_KEY) as admin:
        shown: dict[str, Any] = admin.get(f"/v1/keys/{key_id}").json()
    return shown


def echoed(client: openai.OpenAI, text: str) -> tuple[list[dict[str, Any]], httpx.Headers]:
    """What the upstream was sent (its ``__echo__`` answer), and the answer's headers."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": f"__echo__ {text}"}]
    )
    content = raw.parse().choices[0].message.content or ""
    return json.loads(content)["messages"], raw.headers


def unmodified(gateway: InProcessGateway, key: str, **headers: str) -> openai.OpenAI:
    """The official SDK as a client brings it, into the app (closing it closes its
    transport)."""
    return openai_client(gateway, api_key=key, default_headers=headers)


def test_the_keys_default_gives_an_unmodified_client_memory_and_rag(
    gateway: InProcessGateway,
) -> None:
    key = new_key(gateway, memory=True, rag=True, user_id_from="key")
    shown = shown_key(gateway, key["id"])
    assert shown["key"]["context"] == {"memory": True, "rag": True, "user_id_from": "key"}
    with unmodified(gateway, key["key"]) as client:
        told = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "My cat is called Tom."}]
        )
        assert told.headers["x-gateway-memory-id"].startswith("mem-")

        def remembered() -> list[dict[str, Any]] | None:
            messages, _ = echoed(client, "What is my cat called, and the coolant?")
            context = messages[0]["content"] if messages[0]["role"] == "system" else ""
            return messages if "Tom" in context else None

        messages = eventually(remembered)
    assert messages is not None, "the turn was never remembered for the key's user"
    assert "heavy water" in messages[0]["content"]
    assert [m["role"] for m in messages] == ["system", "user"]


def test_headers_override_the_keys_default(gateway: InProcessGateway) -> None:
    key = new_key(gateway, memory=True, rag=True, user_id_from="key")
    off = {"X-Gateway-Memory": "false", "X-Gateway-RAG": "false"}
    with unmodified(gateway, key["key"], **off) as client:
        messages, headers = echoed(client, "the coolant?")
    assert [m["role"] for m in messages] == ["user"]
    assert "x-gateway-stages" not in headers
    with unmodified(gateway, key["key"], **{"X-Gateway-Memory": "false"}) as client:
        messages, headers = echoed(client, "the coolant?")
    assert "heavy water" in messages[0]["content"]
    assert "memory_retrieval" not in headers["x-gateway-stages"]
    assert "x-gateway-memory-id" not in headers


def test_memory_without_a_user_is_skipped_not_refused(gateway: InProcessGateway) -> None:
    """The key's default names no user (``header``) and the client sends none: RAG
    still comes, memory is skipped and said so."""
    key = new_key(gateway, memory=True, rag=True)
    with unmodified(gateway, key["key"]) as client:
        messages, headers = echoed(client, "the coolant?")
    assert "heavy water" in messages[0]["content"]
    assert "memory: no user id" in headers["x-gateway-degraded"]
    assert "x-gateway-memory-id" not in headers
    # Named by the header, the same key's user gets memory.
    with unmodified(gateway, key["key"], **{"X-Gateway-User-Id": "dana"}) as client:
        _, headers = echoed(client, "the coolant?")
    assert "memory_retrieval" in headers["x-gateway-stages"]


def test_the_user_from_the_request_anthropic_metadata(gateway: InProcessGateway) -> None:
    key = new_key(gateway, memory=True, user_id_from="request")
    user_id = f"erin-{uuid.uuid4().hex[:8]}"
    with anthropic_client(gateway, api_key=key["key"]) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, metadata={"user_id": user_id},
            messages=[{"role": "user", "content": "I live in Oslo."}],
        )  # fmt: skip
        assert raw.headers["x-gateway-memory-id"].startswith("mem-")

    with api_client(gateway, ADMIN_KEY) as admin:

        def stored() -> list[Any] | None:
            page = admin.get("/v1/memories", params={"user_id": user_id}).json()
            return page["data"] or None

        memories = eventually(stored)
    assert memories is not None
    assert "I live in Oslo." in memories[0]["text"]


def test_a_key_without_context_never_gets_it(gateway: InProcessGateway) -> None:
    key = new_key(gateway)
    shown = shown_key(gateway, key["id"])
    assert shown["key"]["context"] == {"memory": False, "rag": False, "user_id_from": "header"}
    with unmodified(gateway, key["key"]) as client:
        messages, headers = echoed(client, "the coolant?")
    assert [m["role"] for m in messages] == ["user"]
    assert "x-gateway-stages" not in headers


@pytest.mark.parametrize(
    "context",
    [{"memory": "yes"}, {"user_id_from": "cookie"}, {"rag": True, "recall": True}],
)
def test_a_bad_context_is_refused_naming_it(
    gateway: InProcessGateway, context: dict[str, Any]
) -> None:
    with api_client(gateway, ADMIN_KEY) as admin:
        response = admin.post("/v1/keys", json={"name": "bad", "context": context})
    assert_openai_error(response, 400)
    assert "context" in response.json()["error"]["message"]

"""``GATEWAY_MEMORY_BACKEND=mem0``: the gateway keeps long-term memory in Mem0 (the
``[mem0]`` extra), over HTTP against the gateway served in process: ``/v1/memories``
and ``/v1/chat`` behave as on the default store (a stored turn is found by the next
chat, other users and tenants see nothing); and a bad choice stops the start of a real
``gateway serve`` process with its name."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream
from tests.e2e.clients import api_client, eventually
from tests.e2e.conftest import UNLIMITED
from tests.in_process import InProcessGateway, in_process_gateway

ALICE, BOB = "sk-mem0-alice", "sk-mem0-bob"  # two tenants


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    if importlib.util.find_spec("mem0") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mem0ai is not installed (scripts/setup.sh --dev installs it)")
        pytest.skip("mem0ai is not installed (pip install -e '.[mem0]')")
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "GATEWAY_TIER_LIMITS": UNLIMITED,
        "GATEWAY_MEMORY_BACKEND": "mem0",
        "API_KEYS": f"{ALICE}:developer:alice,{BOB}:developer:bob",
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("mem0")) as gateway:
        yield gateway


def client(gateway: InProcessGateway, key: str) -> httpx.Client:
    return api_client(gateway, key, timeout=60)


def chat(http: httpx.Client, user: str, content: str) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": content}], "user_id": user, "use_rag": False}
    response = http.post("/v1/chat", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_memories_are_kept_in_mem0(gateway: InProcessGateway) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with client(gateway, ALICE) as alice:
        added = alice.post(
            "/v1/memories", json={"user_id": user, "text": "My favourite city is Reykjavik"}
        )
        assert added.status_code == 201, added.text
        memory_id = added.json()["id"]
        hits = alice.post(
            "/v1/memories/search", json={"user_id": user, "query": "Which city do I like?"}
        )
        assert hits.status_code == 200, hits.text
        assert [h["id"] for h in hits.json()["data"]] == [memory_id]
        listed = alice.get("/v1/memories", params={"user_id": user}).json()["data"]
        assert [m["text"] for m in listed] == ["My favourite city is Reykjavik"]
        # Another tenant with the same user id sees nothing of it.
        with client(gateway, BOB) as bob:
            assert bob.get("/v1/memories", params={"user_id": user}).json()["data"] == []
            assert bob.get(f"/v1/memories/{memory_id}", params={"user_id": user}).status_code == 404
        corrected = alice.put(
            f"/v1/memories/{memory_id}", json={"user_id": user, "text": "I like Oslo best"}
        )
        assert corrected.status_code == 200, corrected.text
        assert alice.get(f"/v1/memories/{memory_id}", params={"user_id": user}).json()["text"] == (
            "I like Oslo best"
        )
        forgotten = alice.delete("/v1/memories", params={"user_id": user})
        assert forgotten.status_code == 200, forgotten.text
        assert forgotten.json()["deleted"] == 1
        assert alice.get("/v1/memories", params={"user_id": user}).json()["data"] == []


def test_a_chat_turn_is_stored_in_mem0_and_recalled(gateway: InProcessGateway) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with client(gateway, ALICE) as alice:
        first = chat(alice, user, "Remember: my dog is called Pixel")
        assert first["metadata"]["memory_stored"] is True

        def stored() -> list[dict[str, object]] | None:
            data = alice.get("/v1/memories", params={"user_id": user}).json()["data"]
            return data or None

        memories = eventually(stored, within_s=60)
        assert memories, "the turn was not stored"
        assert "Pixel" in str(memories[0]["text"]), memories
        second = chat(alice, user, "__echo__ What is my dog called?")
        used = second["context"]["memories"]
        assert any("Pixel" in m["text"] for m in used), used
        # The memory reached the model's prompt.
        assert "Pixel" in second["choices"][0]["message"]["content"]


def test_health_names_the_memory_store(gateway: InProcessGateway) -> None:
    with client(gateway, ALICE) as alice:
        response = alice.get("/health")
    assert response.status_code == 200, response.text
    assert "memory" in response.text


def test_an_unknown_memory_backend_stops_the_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_MEMORY_BACKEND": "mem1", "GATEWAY_DATA_DIR": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "GATEWAY_MEMORY_BACKEND" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr

"""Backends down: ``/v1/chat`` still answers (200) and names the stage it did without;
``/health`` says so. Qdrant unreachable, a private Redis killed and restarted (the app
in process), and a turn queued in Redis surviving the gateway's death (a real process,
killed; the app in process drains what it left)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from redis import Redis

from tests.conftest import FakeUpstream, GatewayProcess, start_gateway
from tests.e2e.clients import Gateway, api_client, eventually, sse_data
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.openai_errors import assert_openai_error
from tests.e2e.test_unified_chat import (
    CHAT,
    FACT,
    QUESTION,
    ROOMY,
    chat,
    listed,
    messages,
    nowhere,
    tell,
    unique,
    wait_until_stored,
)
from tests.in_process import InProcessGateway, in_process_gateway

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer

pytest_plugins = ["tests.contract.memory_fixtures"]

# RedisStreamMemoryQueue's defaults: where the gateway queues turns for storage.
TURNS_STREAM, WRITERS_GROUP = "gateway:memory:turns", "memory-writers"


def gateway_env(upstream: FakeUpstream, **env: str) -> dict[str, str]:
    return {"MAX_SERVE_URL": upstream.url, "GATEWAY_DEFAULT_MODEL": "fake-model", **env}


def degraded_stages(answer: dict[str, Any]) -> dict[str, str]:
    entries = answer["metadata"]["degraded"]
    assert all(e["reason"] for e in entries), entries
    return {e["stage"]: e["reason"] for e in entries}


# --- Qdrant unreachable -------------------------------------------------------------------


@pytest.fixture(scope="module")
def qdrantless_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    env = gateway_env(fake_upstream, QDRANT_URL=nowhere())
    with in_process_gateway(env, tmp_path_factory.mktemp("qdrantless")) as gateway:
        yield gateway


def test_chat_answers_without_qdrant_naming_both_retrievals(
    qdrantless_gateway: Gateway,
) -> None:
    with api_client(qdrantless_gateway) as client:
        # Nothing stored: a turn queued here could never be, and would hold up the
        # gateway's graceful stop (it tries to store what is queued).
        answer = chat(client, "Hello!", user_id=unique("alice"), store_memory=False, **ROOMY)
    assert answer["choices"][0]["message"]["content"]
    assert {"memory_retrieval", "rag_retrieval"} <= set(degraded_stages(answer))
    assert answer["context"] == {"memories": [], "rag_documents": []}


def test_streamed_chat_answers_without_qdrant(qdrantless_gateway: Gateway) -> None:
    with api_client(qdrantless_gateway) as client:
        response = client.post(
            CHAT,
            json={
                "messages": messages("Hello!"),
                "user_id": unique("alice"),
                "store_memory": False,
                "stream": True,
            },
        )
    assert response.status_code == 200, response.text
    *_, last, done = sse_data(response.text)
    assert done == "[DONE]"
    metadata = json.loads(last)["metadata"]
    assert {"memory_retrieval", "rag_retrieval"} <= {d["stage"] for d in metadata["degraded"]}


def test_health_is_degraded_without_qdrant(qdrantless_gateway: Gateway) -> None:
    with api_client(qdrantless_gateway, None, timeout=10) as client:
        response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "degraded"
    assert health["services"]["qdrant"]["status"] == "unhealthy"
    assert health["services"]["memory"]["status"] == "unhealthy"
    assert health["services"]["max_serve"]["status"] == "healthy"


def test_memory_api_is_503_without_qdrant(qdrantless_gateway: Gateway) -> None:
    with api_client(qdrantless_gateway) as client:
        response = client.get("/v1/memories", params={"user_id": "alice"})
    assert_openai_error(response, 503)


# --- Redis killed and restarted -----------------------------------------------------------


@pytest.fixture(scope="module")
def redis_for_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from tests.contract.memory_fixtures import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis-queue"))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def redis_gateway(
    redis_for_queue: RedisServer,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessGateway]:
    env = gateway_env(fake_upstream, REDIS_URL=f"redis://127.0.0.1:{redis_for_queue.port}/0")
    with in_process_gateway(env, tmp_path_factory.mktemp("redis-gateway")) as gateway:
        yield gateway


def stores(client: httpx.Client, user_id: str) -> str | None:
    """A turn's memory id if the gateway could queue it, else None."""
    answer = chat(client, "I also like coffee", user_id=user_id)
    return answer["metadata"]["memory_id"] if answer["metadata"]["memory_stored"] else None


def health(gateway: Gateway, key: str | None = None) -> dict[str, Any]:
    """``/health``: its details (why a service is down) for admin keys only."""
    with api_client(gateway, key, timeout=10) as client:
        return dict(client.get("/health").json())


def redis_health(gateway: Gateway) -> str:
    return str(health(gateway)["services"]["redis"]["status"])


@pytest.mark.redis
def test_redis_down_reports_memory_not_stored_then_recovers(
    redis_gateway: Gateway, redis_for_queue: RedisServer
) -> None:
    alice = unique("alice")
    # A short client timeout: the gateway must answer promptly, not hang on Redis.
    with api_client(redis_gateway, timeout=10) as client:
        tell(client, alice, "I like tea")
        redis_for_queue.kill()
        try:
            down = chat(client, "I like cocoa", user_id=alice)
            # The detail (why it is down) is for admin keys.
            down_health = health(redis_gateway, ADMIN_KEY)
        finally:
            redis_for_queue.start()
        assert down["choices"][0]["message"]["content"]
        assert down["metadata"]["memory_stored"] is False
        assert down["metadata"]["memory_id"] is None
        assert "memory_storage" in degraded_stages(down)
        assert down_health["status"] == "degraded"
        assert down_health["services"]["redis"]["status"] == "unhealthy"
        assert down_health["services"]["redis"]["detail"]
        # Back on the same port: storing works again (a pooled connection from before
        # the restart may fail once, hence the polling).
        memory_id = eventually(lambda: stores(client, alice), within_s=15)
        assert memory_id, "storing never worked again after Redis came back"
        wait_until_stored(client, alice, memory_id)
        assert eventually(lambda: redis_health(redis_gateway) == "healthy")
        assert not any("cocoa" in m["text"] for m in listed(client, alice))


@pytest.mark.redis
def test_redis_down_still_recalls_long_term_memories(
    redis_gateway: Gateway, redis_for_queue: RedisServer
) -> None:
    alice = unique("alice")
    with api_client(redis_gateway, timeout=10) as client:
        tell(client, alice)
        redis_for_queue.kill()
        try:
            asked = chat(client, QUESTION, user_id=alice, **ROOMY)
        finally:
            redis_for_queue.start()
    # Only the short-term context (a Redis list) is missing, and said to be.
    stages = degraded_stages(asked)
    assert stages, asked["metadata"]
    assert "memory_retrieval" not in stages
    assert any("Reykjavik" in m["text"] for m in asked["context"]["memories"])


# --- a queued turn outlives the gateway ---------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the server's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def freeze_with_nothing_in_hand(gateway: GatewayProcess, redis: Redis) -> None:
    """Stop the gateway's workers at a moment when no turn is delivered to them (a turn
    they hold would be reclaimed only after a minute): every queued turn is then one
    that any next consumer reads at once."""
    workers = children(gateway.process.pid)
    assert workers, "the gateway has no worker process"
    for _ in range(100):
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        if redis.xpending(TURNS_STREAM, WRITERS_GROUP)["pending"] == 0:
            return
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the gateway's writer always held a turn")


def queued_memory_ids(redis: Redis) -> set[str]:
    """The memory ids of the turns in the gateway's stream (the adapter's JSON)."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], redis.xrange(TURNS_STREAM))
    return {json.loads(fields[b"turn"])["memory_id"] for _, fields in entries}


@pytest.mark.redis
def test_a_queued_turn_survives_a_gateway_kill(
    private_redis_server: RedisServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    redis_url = f"redis://127.0.0.1:{private_redis_server.port}/0"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Gateway A queues turns in Redis but cannot store them: its Qdrant is unreachable.
    first = start_gateway(
        gateway_env(fake_upstream, REDIS_URL=redis_url, QDRANT_URL=nowhere()), tmp_path / "a"
    )
    alice = unique("alice")
    redis = Redis(port=private_redis_server.port, socket_timeout=5)
    try:
        with api_client(first) as client:
            told = chat(client, FACT, user_id=alice)
        memory_id = told["metadata"]["memory_id"]
        assert told["metadata"]["memory_stored"] is True
        freeze_with_nothing_in_hand(first, redis)
        assert memory_id in queued_memory_ids(redis)
    finally:
        # Killed, not stopped: no graceful shutdown, nothing flushed.
        workers = children(first.process.pid)
        first.process.kill()
        first.process.wait()
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        redis.close()
    # Gateway B, on the same Redis with a working store, drains what A left queued.
    env = gateway_env(fake_upstream, REDIS_URL=redis_url)
    with in_process_gateway(env, tmp_path / "b") as second, api_client(second) as client:
        wait_until_stored(client, alice, memory_id)
        (memory,) = listed(client, alice)
    assert FACT in memory["text"]

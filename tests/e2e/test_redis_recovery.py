"""Redis stops and comes back on the same port while the gateway runs on: its background
writer resumes by itself (no gateway restart), every turn the gateway said it queued
is stored, ``/health`` shows the outage with a reason and then the recovery, each change
of state is logged once, and the password in ``REDIS_URL`` appears nowhere."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import FakeUpstream, GatewayProcess, start_gateway, stop
from tests.e2e.clients import api_client, eventually
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.test_degraded import degraded_stages, gateway_env
from tests.e2e.test_unified_chat import chat, unique, wait_until_stored

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer

pytest_plugins = ["tests.contract.memory_fixtures"]

SECRET = f"pw-{uuid.uuid4().hex}"


def admin_client(server: RedisServer, password: str | None = None) -> Redis:
    # No retries: SHUTDOWN's answer is a closed connection, not worth seconds of retrying.
    return Redis(port=server.port, password=password, socket_timeout=5, retry=Retry(NoBackoff(), 0))


def require_password(server: RedisServer) -> None:
    """The private redis-server has no password of its own (nor keeps one across a
    restart): set one, so that ``REDIS_URL`` carries a secret."""
    with admin_client(server) as admin:
        admin.config_set("requirepass", SECRET)


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from tests.contract.memory_fixtures import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis-recovery"))
    require_password(server)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def gateway(
    guarded_redis: RedisServer,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    redis_url = f"redis://:{SECRET}@127.0.0.1:{guarded_redis.port}/0"
    gateway = start_gateway(
        gateway_env(fake_upstream, REDIS_URL=redis_url), tmp_path_factory.mktemp("recovery")
    )
    yield gateway
    stop(gateway.process)  # type: ignore[arg-type]


def accepted(client: httpx.Client, user_id: str, text: str) -> str | None:
    """The memory id of a turn the gateway said it queued, else None."""
    answer = chat(client, text, user_id=user_id)
    return answer["metadata"]["memory_id"] if answer["metadata"]["memory_stored"] else None


def accept(client: httpx.Client, user_id: str, label: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        # Right after a restart the first try may meet a stale pooled connection.
        memory_id = eventually(lambda n=n: accepted(client, user_id, f"{label} {n}"))
        assert memory_id, f"the gateway never queued {label} {n} again"
        ids.append(memory_id)
    return ids


def health(gateway: GatewayProcess) -> dict[str, Any]:
    # The details (why a dependency is down) are for admin keys.
    body: dict[str, Any] = httpx.get(
        f"{gateway.url}/health", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ).json()
    return body


def while_down(client: httpx.Client, gateway: GatewayProcess, user_id: str) -> None:
    """What a client sees during the outage: an answer without storage, and the cause."""
    answer = chat(client, "I like cocoa", user_id=user_id)
    assert answer["choices"][0]["message"]["content"]
    assert answer["metadata"]["memory_stored"] is False
    assert "memory_storage" in degraded_stages(answer)
    redis = health(gateway)["services"]["redis"]
    assert redis["status"] == "unhealthy"
    assert redis["detail"].startswith("unreachable since "), redis


def redis_states(gateway: GatewayProcess) -> dict[str, list[str]]:
    """The ``redis_down`` / ``redis_up`` events of the log, in order, per component."""
    states: dict[str, list[str]] = defaultdict(list)
    for line in gateway.log().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") in {"redis_down", "redis_up"}:
                states[entry["component"]].append(entry["event"])
    return states


def outage(
    client: httpx.Client, gateway: GatewayProcess, redis: RedisServer, user_id: str, label: str
) -> list[str]:
    """Redis is down: the chat degrades; then it is back (with its password) and two
    more turns are accepted, whose ids are returned."""
    try:
        while_down(client, gateway, user_id)
    finally:
        redis.start()
        require_password(redis)
    return accept(client, user_id, label, 2)


@pytest.mark.redis
def test_the_writer_resumes_after_redis_stops_and_restarts(
    gateway: GatewayProcess, guarded_redis: RedisServer
) -> None:
    alice = unique("alice")
    stored: list[str] = []
    with api_client(gateway, timeout=10) as client:
        # 1. Stopped cleanly (its data saved) right after turns were queued: whether the
        # writer had stored them or not, it finds them again after the restart.
        stored += accept(client, alice, "I like tea, cup", 3)
        with admin_client(guarded_redis, password=SECRET) as admin:
            admin.shutdown(save=True)
        guarded_redis.kill()  # reaps the process
        stored += outage(client, gateway, guarded_redis, alice, "I like jam, jar")
        for memory_id in stored:
            wait_until_stored(client, alice, memory_id)

        # 2. Killed: it comes back empty, without the stream or the writers' group.
        guarded_redis.kill()
        stored += outage(client, gateway, guarded_redis, alice, "I like figs, box")
        for memory_id in stored:
            wait_until_stored(client, alice, memory_id)

    assert eventually(lambda: health(gateway)["services"]["redis"]["status"] == "healthy")
    # One line per change of state, not one per retry: down and up, once per outage.
    assert redis_states(gateway)["memory_queue"] == ["redis_down", "redis_up"] * 2
    assert SECRET not in gateway.log()
    assert SECRET not in json.dumps(health(gateway))

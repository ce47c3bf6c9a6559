"""Redis killed (SIGKILL) and restarted while chat requests keep coming, against real
processes: the gateway, a private redis-server, concurrent httpx clients.

The chat keeps answering 200 throughout; while Redis is down each answer says its turn
was not stored (``memory_stored: false``, the ``memory_storage`` stage degraded) instead
of failing; once Redis is back, turns are stored again without a gateway restart; and
no turn the gateway said it queued is lost. Redis here runs as production should run
it under a write-behind queue: with an append-only file synced on every write, so what
it acknowledged survives its death."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess, free_port, start_gateway, stop
from tests.e2e.clients import api_client, eventually
from tests.e2e.conftest import UNLIMITED
from tests.e2e.test_degraded import degraded_stages, gateway_env
from tests.e2e.test_unified_chat import CHAT, messages, unique

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer

pytest_plugins = ["tests.contract.memory_fixtures"]

CLIENTS = 3
ANSWERS_PER_PHASE = 15  # answers each phase waits for before the next fault
WITHIN_S = 60.0  # a bound against a hang, not a measure


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    from tests.contract.memory_fixtures import RedisServer

    durable = ("--appendonly", "yes", "--appendfsync", "always")
    server = RedisServer(tmp_path / "redis", free_port(), options=durable)
    server.directory.mkdir()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def gateway(
    durable_redis: RedisServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> Iterator[GatewayProcess]:
    redis_url = f"redis://127.0.0.1:{durable_redis.port}/0"
    gateway = start_gateway(
        gateway_env(fake_upstream, REDIS_URL=redis_url, GATEWAY_TIER_LIMITS=UNLIMITED),
        tmp_path,
    )
    yield gateway
    stop(gateway.process)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Answer:
    phase: str  # when it was sent
    user_id: str
    status: int
    metadata: dict[str, Any]


@dataclass
class ChatLoad:
    """CLIENTS threads asking /v1/chat back to back, each as its own user, storing
    every turn, until the block ends."""

    gateway: GatewayProcess
    phase: str = "up"
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> ChatLoad:
        self._threads = [
            threading.Thread(target=self._client, args=(unique(f"load{n}"),), daemon=True)
            for n in range(CLIENTS)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WITHIN_S)

    def _client(self, user_id: str) -> None:
        with api_client(self.gateway, timeout=WITHIN_S) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                phase = self.phase
                body = {
                    "messages": messages(f"Note {n}: my locker number is {n * 7}."),
                    "user_id": user_id,
                    "use_rag": False,
                    "max_tokens": 16,
                }
                response = client.post(CHAT, json=body)
                metadata = response.json().get("metadata", {}) if response.is_success else {}
                with self._lock:
                    self.answers.append(Answer(phase, user_id, response.status_code, metadata))

    def count(self, phase: str, stored: bool | None = None) -> int:
        with self._lock:
            return sum(
                1
                for a in self.answers
                if a.phase == phase
                and (stored is None or a.metadata.get("memory_stored") is stored)
            )

    def until(self, phase: str, answers: int, stored: bool | None = None) -> None:
        assert eventually(lambda: self.count(phase, stored) >= answers, within_s=WITHIN_S), (
            f"{phase}: {self.count(phase)} answers"
        )


def is_stored(client: httpx.Client, answer: Answer) -> bool:
    memory_id = answer.metadata["memory_id"]
    found = client.get(f"/v1/memories/{memory_id}", params={"user_id": answer.user_id})
    return found.status_code == 200


@pytest.mark.redis
def test_chat_answers_through_a_redis_kill_under_load_and_loses_no_queued_turn(
    gateway: GatewayProcess, durable_redis: RedisServer
) -> None:
    with ChatLoad(gateway) as load:
        load.until("up", ANSWERS_PER_PHASE, stored=True)

        assert durable_redis.process is not None
        durable_redis.process.kill()  # SIGKILL: no goodbye, no final save
        durable_redis.process.wait()
        load.phase = "down"
        load.until("down", ANSWERS_PER_PHASE, stored=False)

        durable_redis.start()  # same port, same directory: the append-only file loads
        load.phase = "back"
        load.until("back", ANSWERS_PER_PHASE, stored=True)

    # The chat never failed: every answer a 200, whatever Redis was doing.
    assert {a.status for a in load.answers} == {200}, [a for a in load.answers if a.status != 200][
        :3
    ]
    # Down: said plainly, per answer.
    refused = [a for a in load.answers if a.metadata["memory_stored"] is False]
    assert refused
    assert all("memory_storage" in degraded_stages({"metadata": a.metadata}) for a in refused)
    # Nothing the gateway said it queued is lost: each one is stored, before the kill,
    # in flight during it, or after the restart.
    queued = [a for a in load.answers if a.metadata["memory_stored"] is True]
    assert {a.phase for a in queued} >= {"up", "back"}
    with api_client(gateway) as client:
        pending = list(queued)

        def all_stored() -> bool:
            pending[:] = [a for a in pending if not is_stored(client, a)]
            return not pending

        assert eventually(all_stored, within_s=WITHIN_S), (
            f"{len(pending)} of {len(queued)} queued turns never stored"
        )

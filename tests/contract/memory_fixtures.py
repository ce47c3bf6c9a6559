"""MemoryStore and MemoryQueue adapters as the contract suites receive them, and private
redis-servers. A pytest plugin: a test module loads it with ``pytest_plugins`` (and imports
from it only for type checking, so that pytest is the first to import it and rewrites its
asserts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from adapters.memory.in_process_queue import InProcessMemoryQueue
from adapters.memory.qdrant_memory import QdrantEdgeMemoryStore, QdrantServerMemoryStore
from adapters.memory.redis_stream_queue import RedisStreamMemoryQueue
from domain.memory import DecayPolicy, Memory, MemoryHit, MemoryOwner, new_memory_id
from ports.memory_queue import MemoryQueue
from ports.memory_store import MemoryStore
from tests.conftest import free_port, stop
from tests.fakes.fake_embedder import FakeEmbedder
from tests.fakes.fake_memory_queue import FakeMemoryQueue
from tests.fakes.fake_memory_store import FakeMemoryStore

DIMENSION = 64
NOW = 1_700_000_000.0  # every test's "now": ages are exact
HALF_LIFE_S = 7 * 24 * 3600.0
DECAY = DecayPolicy(HALF_LIFE_S)


# --- MemoryStore -------------------------------------------------------------------------


@dataclass
class StoreUnderTest:
    """The store, the embedder that makes its vectors, and the decay and "now" that its
    searches use (every age is exact)."""

    store: MemoryStore
    embedder: FakeEmbedder = field(default_factory=lambda: FakeEmbedder(DIMENSION))
    decay: DecayPolicy = DECAY
    now: float = NOW

    async def remember(
        self,
        tenant: str,
        user_id: str,
        text: str,
        *,
        age_s: float = 0.0,
        metadata: dict[str, Any] | None = None,
    ) -> Memory:
        """Store ``text`` as a memory made ``age_s`` before ``now``."""
        created_at = self.now - age_s
        memory = Memory(new_memory_id(), tenant, user_id, text, created_at, dict(metadata or {}))
        await self.store.add(memory, self.embedder.vector(text))
        return memory

    async def search(
        self, tenant: str, user_id: str, query: str, *, limit: int = 5
    ) -> list[MemoryHit]:
        vector = self.embedder.vector(query)
        return await self.store.search(MemoryOwner(tenant, user_id), query, vector, limit, self.now)


@pytest.fixture
def fake_memory_store() -> StoreUnderTest:
    return StoreUnderTest(FakeMemoryStore(DECAY))


@pytest.fixture
async def edge_memory_store(tmp_path: Path) -> AsyncIterator[StoreUnderTest]:
    store = QdrantEdgeMemoryStore(tmp_path / "memories", DIMENSION, decay=DECAY)
    yield StoreUnderTest(store)
    await store.close()


@pytest.fixture
async def server_memory_store() -> AsyncIterator[StoreUnderTest]:
    """The server adapter on qdrant-client's local mode: the same client API, no server."""
    client = AsyncQdrantClient(":memory:")
    yield StoreUnderTest(QdrantServerMemoryStore(client, DIMENSION, decay=DECAY))
    await client.close()


@pytest.fixture(
    params=[
        pytest.param("fake_memory_store", id="fake"),
        pytest.param("edge_memory_store", id="qdrant-edge"),
        pytest.param("server_memory_store", id="qdrant-server:memory"),
    ]
)
def memory_store(request: pytest.FixtureRequest) -> StoreUnderTest:
    """Every MemoryStore adapter, as the contract suite receives it."""
    under_test: StoreUnderTest = request.getfixturevalue(request.param)
    return under_test


# --- a private redis-server --------------------------------------------------------------


@dataclass
class RedisServer:
    """``redis-server`` on a free loopback port, no persistence, in its own directory."""

    directory: Path
    port: int
    process: subprocess.Popen[str] | None = None
    options: tuple[str, ...] = ()  # more redis-server options (the later ones win)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (apt-get install -y redis-server)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1", "--dir", str(self.directory), *self.options],
            cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        with SyncRedis(port=self.port, socket_timeout=1) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited ({self.process.returncode})")
                try:
                    probe.ping()
                    return
                except RedisError:
                    time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING")

    def kill(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def client(self, port: int | None = None) -> Redis:
        # No retries with back-off: a test of a down server should fail fast.
        return Redis(
            host="127.0.0.1", port=port or self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )


def start_redis(directory: Path) -> RedisServer:
    server = RedisServer(directory, free_port())
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture
def private_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for a test that kills it."""
    server = start_redis(tmp_path)
    yield server
    server.kill()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = redis_server.client()
    yield client
    await client.aclose()


# --- MemoryQueue -------------------------------------------------------------------------


@dataclass
class QueueUnderTest:
    queue: MemoryQueue
    # Durable adapters: a new queue object on the same storage, as a restarted gateway
    # builds it, reclaiming what a dead one took after ``claim_idle_s``.
    reopen: Callable[[float], MemoryQueue] | None = None


@pytest.fixture
def fake_memory_queue() -> QueueUnderTest:
    return QueueUnderTest(FakeMemoryQueue())


@pytest.fixture
def in_process_memory_queue() -> QueueUnderTest:
    return QueueUnderTest(InProcessMemoryQueue())


@pytest.fixture
def redis_memory_queue(redis_client: Redis) -> QueueUnderTest:
    stream = f"test:memory:{uuid.uuid4().hex[:12]}"

    def reopen(claim_idle_s: float) -> MemoryQueue:
        return RedisStreamMemoryQueue(redis_client, stream=stream, claim_idle_s=claim_idle_s)

    return QueueUnderTest(RedisStreamMemoryQueue(redis_client, stream=stream), reopen)


@pytest.fixture(
    params=[
        pytest.param("fake_memory_queue", id="fake"),
        pytest.param("in_process_memory_queue", id="in-process"),
        pytest.param("redis_memory_queue", id="redis-stream", marks=pytest.mark.redis),
    ]
)
def memory_queue(request: pytest.FixtureRequest) -> QueueUnderTest:
    """Every MemoryQueue adapter, as the contract suite receives it."""
    under_test: QueueUnderTest = request.getfixturevalue(request.param)
    return under_test

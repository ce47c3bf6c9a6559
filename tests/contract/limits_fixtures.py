"""RateLimiter, KeyStore and UsageHistory adapters as the contract suites receive them.
A pytest plugin (loaded with ``pytest_plugins``); the private redis-server is
``memory_fixtures``'s."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from adapters.limits.file_key_store import FileKeyStore
from adapters.limits.in_process_limiter import InProcessRateLimiter
from adapters.limits.in_process_usage_history import InProcessUsageHistory
from adapters.limits.redis_key_store import RedisKeyStore
from adapters.limits.redis_limiter import RedisRateLimiter
from adapters.limits.redis_usage_history import RedisUsageHistory
from ports.key_store import KeyStore
from ports.rate_limiter import RateLimiter
from ports.usage_history import UsageHistory
from tests.fakes.fake_key_store import FakeKeyStore
from tests.fakes.fake_rate_limiter import FakeRateLimiter
from tests.fakes.fake_usage_history import FakeUsageHistory

pytest_plugins = ["tests.contract.memory_fixtures"]


# --- RateLimiter -------------------------------------------------------------------------


@pytest.fixture
def fake_rate_limiter() -> RateLimiter:
    return FakeRateLimiter()


@pytest.fixture
def in_process_rate_limiter() -> RateLimiter:
    return InProcessRateLimiter()


@pytest.fixture
def redis_rate_limiter(redis_client: Redis) -> RateLimiter:
    return RedisRateLimiter(redis_client, prefix=f"test:rl:{uuid.uuid4().hex[:12]}")


@pytest.fixture(
    params=[
        pytest.param("fake_rate_limiter", id="fake"),
        pytest.param("in_process_rate_limiter", id="in-process"),
        pytest.param("redis_rate_limiter", id="redis", marks=pytest.mark.redis),
    ]
)
def rate_limiter(request: pytest.FixtureRequest) -> RateLimiter:
    """Every RateLimiter adapter, as the contract suite receives it."""
    limiter: RateLimiter = request.getfixturevalue(request.param)
    return limiter


# --- KeyStore ----------------------------------------------------------------------------


@dataclass
class KeyStoreUnderTest:
    store: KeyStore
    # Everything the store has put in its storage, as bytes to search for a secret.
    stored_bytes: Callable[[], Awaitable[bytes]]
    # Durable adapters: a new store object on the same storage, as a restarted gateway
    # builds it (the old one closed first when it has something to close).
    reopen: Callable[[], Awaitable[KeyStore]] | None = None


@pytest.fixture
def fake_key_store() -> KeyStoreUnderTest:
    store = FakeKeyStore()

    async def stored_bytes() -> bytes:
        return repr((store.keys, store.usage_by_period)).encode()

    return KeyStoreUnderTest(store, stored_bytes)


@pytest.fixture
async def file_key_store(tmp_path: Path) -> AsyncIterator[KeyStoreUnderTest]:
    path = tmp_path / "data" / "keys.json"
    opened = [FileKeyStore(path)]

    async def stored_bytes() -> bytes:
        await opened[-1].close()  # what is pending too
        return path.read_bytes()

    async def reopen() -> KeyStore:
        await opened[-1].close()
        opened.append(FileKeyStore(path))
        await opened[-1].load()
        return opened[-1]

    yield KeyStoreUnderTest(opened[0], stored_bytes, reopen)
    for store in opened:
        await store.close()


@pytest.fixture
def redis_key_store(redis_client: Redis) -> KeyStoreUnderTest:
    prefix = f"test:keys:{uuid.uuid4().hex[:12]}"

    async def stored_bytes() -> bytes:
        dump = []
        async for name in redis_client.scan_iter(match=f"{prefix}:*"):
            dump.append(name)
            kind = await redis_client.type(name)
            if kind == b"hash":
                for field, value in (await redis_client.hgetall(name)).items():
                    dump += [field, value]
            elif kind == b"set":
                dump += list(await redis_client.smembers(name))
            else:
                raise AssertionError(f"unexpected {kind!r} {name!r}")
        return b"\n".join(dump)

    async def reopen() -> KeyStore:
        return RedisKeyStore(redis_client, prefix=prefix)

    return KeyStoreUnderTest(RedisKeyStore(redis_client, prefix=prefix), stored_bytes, reopen)


@pytest.fixture(
    params=[
        pytest.param("fake_key_store", id="fake"),
        pytest.param("file_key_store", id="file"),
        pytest.param("redis_key_store", id="redis", marks=pytest.mark.redis),
    ]
)
def key_store(request: pytest.FixtureRequest) -> KeyStoreUnderTest:
    """Every KeyStore adapter, as the contract suite receives it."""
    under_test: KeyStoreUnderTest = request.getfixturevalue(request.param)
    return under_test


@pytest.fixture(
    params=[
        pytest.param("file_key_store", id="file"),
        pytest.param("redis_key_store", id="redis", marks=pytest.mark.redis),
    ]
)
def durable_key_store(request: pytest.FixtureRequest) -> KeyStoreUnderTest:
    """The KeyStore adapters whose keys outlive the store object."""
    under_test: KeyStoreUnderTest = request.getfixturevalue(request.param)
    assert under_test.reopen is not None
    return under_test


# --- UsageHistory ------------------------------------------------------------------------


@pytest.fixture
def fake_usage_history() -> UsageHistory:
    return FakeUsageHistory()


@pytest.fixture
def in_process_usage_history() -> UsageHistory:
    return InProcessUsageHistory()


@pytest.fixture
def redis_usage_history(redis_client: Redis) -> UsageHistory:
    return RedisUsageHistory(redis_client, prefix=f"test:usage:{uuid.uuid4().hex[:12]}")


@pytest.fixture(
    params=[
        pytest.param("fake_usage_history", id="fake"),
        pytest.param("in_process_usage_history", id="in-process"),
        pytest.param("redis_usage_history", id="redis", marks=pytest.mark.redis),
    ]
)
def usage_history(request: pytest.FixtureRequest) -> UsageHistory:
    """Every UsageHistory adapter, as the contract suite receives it."""
    history: UsageHistory = request.getfixturevalue(request.param)
    return history

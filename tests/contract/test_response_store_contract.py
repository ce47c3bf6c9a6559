"""The ResponseStore contract (the Responses API's stored responses), over both
adapters: in process (the embedded default) and Redis (REDIS_URL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from adapters.responses.stores import InProcessResponseStore, RedisResponseStore
from ports.response_store import ResponseStore

pytest_plugins = ["tests.contract.memory_fixtures"]

RECORD: dict[str, Any] = {
    "response": {"id": "resp_1", "object": "response", "output": [], "usage": None},
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
}


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> ResponseStore:
    if request.param == "in-process":
        return InProcessResponseStore()
    client: Redis = request.getfixturevalue("redis_client")
    return RedisResponseStore(client, prefix=f"test:{request.node.name}")


async def test_a_saved_record_is_read_back_as_saved(store: ResponseStore) -> None:
    await store.save("acme", "resp_1", RECORD)
    assert await store.get("acme", "resp_1") == RECORD
    assert await store.get("acme", "resp_2") is None


async def test_a_record_read_back_is_a_copy(store: ResponseStore) -> None:
    await store.save("acme", "resp_1", RECORD)
    found = await store.get("acme", "resp_1")
    assert found is not None
    found["messages"].clear()
    assert await store.get("acme", "resp_1") == RECORD


async def test_scoped_to_the_tenant(store: ResponseStore) -> None:
    await store.save("acme", "resp_1", RECORD)
    assert await store.get("globex", "resp_1") is None
    assert await store.delete("globex", "resp_1") is False
    # Delimiters in ids cannot make two tenants' responses collide.
    await store.save("a", "b:c", RECORD)
    assert await store.get("a:b", "c") is None


async def test_delete_says_whether_there_was_one(store: ResponseStore) -> None:
    await store.save("acme", "resp_1", RECORD)
    assert await store.delete("acme", "resp_1") is True
    assert await store.get("acme", "resp_1") is None
    assert await store.delete("acme", "resp_1") is False


async def test_saving_again_replaces(store: ResponseStore) -> None:
    await store.save("acme", "resp_1", RECORD)
    await store.save("acme", "resp_1", {**RECORD, "messages": []})
    found = await store.get("acme", "resp_1")
    assert found is not None
    assert found["messages"] == []


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def short_lived(request: pytest.FixtureRequest) -> tuple[ResponseStore, float]:
    """A store keeping records about a second, and how long to wait for one to expire."""
    if request.param == "in-process":
        return InProcessResponseStore(ttl_s=0.2), 0.3
    client: Redis = request.getfixturevalue("redis_client")
    return RedisResponseStore(client, ttl_s=1, prefix=f"test:{request.node.name}"), 2.2


async def test_records_expire(short_lived: tuple[ResponseStore, float]) -> None:
    store, wait_s = short_lived
    await store.save("acme", "resp_1", RECORD)
    assert await store.get("acme", "resp_1") is not None
    await asyncio.sleep(wait_s)
    assert await store.get("acme", "resp_1") is None
    assert await store.delete("acme", "resp_1") is False


async def test_in_process_keeps_at_most_its_bound_oldest_dropped() -> None:
    store = InProcessResponseStore(max_responses=2)
    for n in range(3):
        await store.save("acme", f"resp_{n}", RECORD)
    assert await store.get("acme", "resp_0") is None
    assert await store.get("acme", "resp_1") is not None
    assert await store.get("acme", "resp_2") is not None

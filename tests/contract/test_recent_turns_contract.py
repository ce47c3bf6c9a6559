"""The RecentTurns contract (short-term context), over both adapters; then Redis's
faults: a request never waits on a Redis that is down, the health says so, and the
adapter works again once Redis is back on the same port."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from adapters.memory.recent_turns import InProcessRecentTurns, RedisRecentTurns
from domain.errors import MemoryUnavailable
from domain.health import Status
from domain.memory import MemoryOwner
from ports.recent_turns import RecentTurns

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer
from tests.conftest import free_port

pytest_plugins = ["tests.contract.memory_fixtures"]


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def recent_turns(request: pytest.FixtureRequest) -> RecentTurns:
    if request.param == "in-process":
        return InProcessRecentTurns(turns=3)
    client: Redis = request.getfixturevalue("redis_client")
    return RedisRecentTurns(client, turns=3, prefix=f"test:{request.node.name}")


async def test_keeps_the_newest_turns_newest_first(recent_turns: RecentTurns) -> None:
    for n in range(5):
        await recent_turns.append(MemoryOwner("acme", "alice"), f"turn {n}")
    assert await recent_turns.recent(MemoryOwner("acme", "alice"), 10) == [
        "turn 4",
        "turn 3",
        "turn 2",
    ]
    assert await recent_turns.recent(MemoryOwner("acme", "alice"), 2) == ["turn 4", "turn 3"]


async def test_scoped_to_tenant_and_user(recent_turns: RecentTurns) -> None:
    await recent_turns.append(MemoryOwner("acme", "alice"), "secret of alice at acme")
    assert await recent_turns.recent(MemoryOwner("acme", "bob"), 5) == []
    assert await recent_turns.recent(MemoryOwner("globex", "alice"), 5) == []
    # Delimiters in ids cannot make two users collide.
    await recent_turns.append(MemoryOwner("a", "b:c"), "one")
    assert await recent_turns.recent(MemoryOwner("a:b", "c"), 5) == []
    assert await recent_turns.recent(MemoryOwner("acme", "*"), 5) == []


async def test_clear_forgets_the_user_only(recent_turns: RecentTurns) -> None:
    await recent_turns.append(MemoryOwner("acme", "alice"), "x")
    await recent_turns.append(MemoryOwner("acme", "bob"), "y")
    await recent_turns.clear(MemoryOwner("acme", "alice"))
    assert await recent_turns.recent(MemoryOwner("acme", "alice"), 5) == []
    assert await recent_turns.recent(MemoryOwner("acme", "bob"), 5) == ["y"]


async def test_in_process_turns_expire() -> None:
    turns = InProcessRecentTurns(turns=3, ttl_s=0.0)
    await turns.append(MemoryOwner("acme", "alice"), "x")
    assert await turns.recent(MemoryOwner("acme", "alice"), 5) == []


@pytest.mark.redis
async def test_redis_down_is_memory_unavailable(redis_server: RedisServer) -> None:
    client = redis_server.client(port=free_port())
    try:
        with pytest.raises(MemoryUnavailable):
            await RedisRecentTurns(client).append(MemoryOwner("acme", "alice"), "x")
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_down_then_back(private_redis_server: RedisServer) -> None:
    client = private_redis_server.client()
    turns = RedisRecentTurns(client, turns=3)
    try:
        await turns.append(MemoryOwner("acme", "alice"), "before")
        assert (await turns.check()).status is Status.HEALTHY
        private_redis_server.kill()
        for call in (
            turns.append(MemoryOwner("acme", "alice"), "while down"),
            turns.recent(MemoryOwner("acme", "alice"), 5),
            turns.clear(MemoryOwner("acme", "alice")),
        ):
            with pytest.raises(MemoryUnavailable, match="Redis could not"):
                await call
        down = await turns.check()
        assert (down.name, down.status) == ("recent_turns", Status.UNHEALTHY)
        assert down.detail is not None
        assert down.detail.startswith("unreachable since ")
        private_redis_server.start()  # no persistence: back empty
        assert (await turns.check()).status is Status.HEALTHY
        await turns.append(MemoryOwner("acme", "alice"), "after")
        assert await turns.recent(MemoryOwner("acme", "alice"), 5) == ["after"]
    finally:
        await client.aclose()

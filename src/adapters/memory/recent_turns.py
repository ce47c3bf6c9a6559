"""Short-term context stores: in process (embedded default) and a Redis list each."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque

from redis.asyncio import Redis

from adapters.memory.redis_retry import REQUEST_PATH, RedisLink, RetryPolicy
from domain.health import ServiceHealth
from domain.memory import MemoryOwner


def _user_key(owner: MemoryOwner) -> str:
    # A digest: no delimiter in a tenant or user id can make two users collide.
    return hashlib.sha256(f"{owner.tenant}\x00{owner.user_id}".encode()).hexdigest()


class InProcessRecentTurns:
    """The last ``turns`` turns of up to ``users`` users (least recently used evicted),
    each kept ``ttl_s`` seconds."""

    def __init__(self, turns: int = 6, ttl_s: float = 3600.0, users: int = 100_000) -> None:
        self._turns = turns
        self._ttl = ttl_s
        self._users = users
        self._by_user: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    async def append(self, owner: MemoryOwner, text: str) -> None:
        key = _user_key(owner)
        turns = self._by_user.pop(key, None) or deque(maxlen=self._turns)
        turns.append((time.monotonic(), text))
        self._by_user[key] = turns
        while len(self._by_user) > self._users:
            self._by_user.popitem(last=False)

    async def recent(self, owner: MemoryOwner, limit: int) -> list[str]:
        turns = self._by_user.get(_user_key(owner))
        if not turns:
            return []
        fresh_after = time.monotonic() - self._ttl
        return [text for at, text in reversed(turns) if at >= fresh_after][:limit]

    async def clear(self, owner: MemoryOwner) -> None:
        self._by_user.pop(_user_key(owner), None)


class RedisRecentTurns:
    """A capped Redis list per user (LPUSH + LTRIM), expiring ``ttl_s`` after the last
    turn: shared by every gateway instance. Every call is on the request path: retried
    briefly (``policy``), not at all while Redis is known to be down. An ``append`` retried
    after a lost answer may keep a turn twice, for ``ttl_s`` at most."""

    def __init__(
        self,
        redis: Redis,
        *,
        turns: int = 6,
        ttl_s: float = 3600.0,
        prefix: str = "gateway:recent",
        health_name: str = "recent_turns",
        policy: RetryPolicy = REQUEST_PATH,
        link: RedisLink | None = None,
    ) -> None:
        self.health_name = health_name
        self._redis = redis
        self._turns = turns
        self._ttl = int(ttl_s)
        self._prefix = prefix
        self._policy = policy
        self._link = link or RedisLink("recent_turns")

    def _key(self, owner: MemoryOwner) -> str:
        return f"{self._prefix}:{_user_key(owner)}"

    async def append(self, owner: MemoryOwner, text: str) -> None:
        key = self._key(owner)

        async def push() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, text.encode())
                pipe.ltrim(key, 0, self._turns - 1)
                pipe.expire(key, self._ttl)
                await pipe.execute()

        await self._link.run("keep a recent turn", push, self._policy)

    async def recent(self, owner: MemoryOwner, limit: int) -> list[str]:
        key = self._key(owner)
        values = await self._link.run(
            "read recent turns", lambda: self._redis.lrange(key, 0, limit - 1), self._policy
        )
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    async def clear(self, owner: MemoryOwner) -> None:
        key = self._key(owner)
        await self._link.run("forget recent turns", lambda: self._redis.delete(key), self._policy)

    async def check(self) -> ServiceHealth:
        """UNHEALTHY, saying since when and why, while Redis is out of reach."""
        return await self._link.check(self.health_name, self._redis.ping)

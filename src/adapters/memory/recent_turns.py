"""Short-term context stores: in process (embedded default) and a Redis list each."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque

from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.errors import MemoryUnavailable


def _user_key(tenant: str, user_id: str) -> str:
    # A digest: no delimiter in a tenant or user id can make two users collide.
    return hashlib.sha256(f"{tenant}\x00{user_id}".encode()).hexdigest()


class InProcessRecentTurns:
    """The last ``turns`` turns of up to ``users`` users (least recently used evicted),
    each kept ``ttl_s`` seconds."""

    def __init__(self, turns: int = 6, ttl_s: float = 3600.0, users: int = 100_000) -> None:
        self._turns = turns
        self._ttl = ttl_s
        self._users = users
        self._by_user: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    async def append(self, tenant: str, user_id: str, text: str) -> None:
        key = _user_key(tenant, user_id)
        turns = self._by_user.pop(key, None) or deque(maxlen=self._turns)
        turns.append((time.monotonic(), text))
        self._by_user[key] = turns
        while len(self._by_user) > self._users:
            self._by_user.popitem(last=False)

    async def recent(self, tenant: str, user_id: str, limit: int) -> list[str]:
        turns = self._by_user.get(_user_key(tenant, user_id))
        if not turns:
            return []
        fresh_after = time.monotonic() - self._ttl
        return [text for at, text in reversed(turns) if at >= fresh_after][:limit]

    async def clear(self, tenant: str, user_id: str) -> None:
        self._by_user.pop(_user_key(tenant, user_id), None)


class RedisRecentTurns:
    """A capped Redis list per user (LPUSH + LTRIM), expiring ``ttl_s`` after the last
    turn: shared by every gateway instance."""

    def __init__(
        self, redis: Redis, *, turns: int = 6, ttl_s: float = 3600.0, prefix: str = "gateway:recent"
    ) -> None:
        self._redis = redis
        self._turns = turns
        self._ttl = int(ttl_s)
        self._prefix = prefix

    def _key(self, tenant: str, user_id: str) -> str:
        return f"{self._prefix}:{_user_key(tenant, user_id)}"

    async def append(self, tenant: str, user_id: str, text: str) -> None:
        key = self._key(tenant, user_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, text.encode())
                pipe.ltrim(key, 0, self._turns - 1)
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"redis is unavailable for recent turns: {exc}") from exc

    async def recent(self, tenant: str, user_id: str, limit: int) -> list[str]:
        try:
            values = await self._redis.lrange(self._key(tenant, user_id), 0, limit - 1)
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"redis is unavailable for recent turns: {exc}") from exc
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    async def clear(self, tenant: str, user_id: str) -> None:
        try:
            await self._redis.delete(self._key(tenant, user_id))
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"redis is unavailable for recent turns: {exc}") from exc

"""Stored responses: in process (the embedded default) and in Redis (REDIS_URL), so
that every gateway instance finds a response stored by another."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import msgspec
from redis.asyncio import Redis

from adapters.memory.redis_retry import REQUEST_PATH, RedisLink, RetryPolicy
from domain.health import ServiceHealth

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _key(tenant: str, response_id: str) -> str:
    # A digest: no delimiter in a tenant or an id can make two responses collide.
    return hashlib.sha256(f"{tenant}\x00{response_id}".encode()).hexdigest()


class InProcessResponseStore:
    """Up to ``max_responses`` responses (the oldest evicted first), each kept
    ``ttl_s`` seconds; records are copied in and out (a caller cannot change one)."""

    def __init__(self, ttl_s: float = 30 * 86400.0, max_responses: int = 10_000) -> None:
        self._ttl = ttl_s
        self._max = max_responses
        self._records: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def save(self, tenant: str, response_id: str, record: dict[str, Any]) -> None:
        key = _key(tenant, response_id)
        self._records.pop(key, None)
        self._records[key] = (time.monotonic() + self._ttl, _encode(record))
        while len(self._records) > self._max:
            self._records.popitem(last=False)

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        key = _key(tenant, response_id)
        found = self._records.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            del self._records[key]
            return None
        return _decode(found[1])

    async def delete(self, tenant: str, response_id: str) -> bool:
        key = _key(tenant, response_id)
        found = self._records.pop(key, None)
        return found is not None and found[0] > time.monotonic()


class RedisResponseStore:
    """One Redis string per response (JSON), expiring ``ttl_s`` after it was stored."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_s: float = 30 * 86400.0,
        prefix: str = "gateway:responses",
        policy: RetryPolicy = REQUEST_PATH,
        link: RedisLink | None = None,
    ) -> None:
        self._redis = redis
        self._ttl = max(1, int(ttl_s))
        self._prefix = prefix
        self._policy = policy
        self._link = link or RedisLink("responses")
        self.health_name = "responses"

    def _name(self, tenant: str, response_id: str) -> str:
        return f"{self._prefix}:{_key(tenant, response_id)}"

    async def save(self, tenant: str, response_id: str, record: dict[str, Any]) -> None:
        name, value = self._name(tenant, response_id), _encode(record)
        await self._link.run(
            "store a response", lambda: self._redis.set(name, value, ex=self._ttl), self._policy
        )

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None:
        name = self._name(tenant, response_id)
        value = await self._link.run(
            "read a stored response", lambda: self._redis.get(name), self._policy
        )
        return None if value is None else _decode(value)

    async def delete(self, tenant: str, response_id: str) -> bool:
        name = self._name(tenant, response_id)
        deleted = await self._link.run(
            "delete a stored response", lambda: self._redis.delete(name), self._policy
        )
        return bool(deleted)

    async def check(self) -> ServiceHealth:
        return await self._link.check(self.health_name, self._redis.ping)

"""``RedisKeyStore``: managed keys shared by every gateway instance, so a revocation is
seen by all of them at their next lookup.

Layout under ``prefix``: ``<prefix>:key:<id>`` a hash per key (its fields; ``policy`` as
JSON; ``last_used_at``/``revoked_at`` absent until set), ``<prefix>:by_hash`` a hash from
key hash to id, ``<prefix>:ids`` the set of ids, and ``<prefix>:usage:<id>:<period>`` a
hash whose ``tokens`` field counts usage (``HINCRBY``), expiring a while after its period.
Never the secret: the store only ever receives its hash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis

from adapters.limits.file_key_store import normalized
from adapters.limits.redis_common import ping_health, translated
from domain.errors import InvalidRequest
from domain.health import ServiceHealth
from domain.limits import ManagedKey

DAY_S = 86_400
# A usage counter outlives its period (a day ``2026-11-26``, a month ``2026-11``) by a
# week whenever it was last incremented: admins still see the period that just ended.
_USAGE_TTL_S = {10: 8 * DAY_S, 7: 38 * DAY_S}
_DEFAULT_USAGE_TTL_S = 62 * DAY_S

# Record, hash index and id set together, unless the id or the hash is taken.
_CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""
# One field of an existing key (never a partial record for an unknown id); with
# ARGV[3] == '1' only if that field is not set yet (a second revoke changes nothing).
_SET_FIELD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# Check-and-add in one step: no other command runs between reading the usage and adding.
_RESERVE_LUA = """
local used = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
local tokens, quota = tonumber(ARGV[1]), tonumber(ARGV[2])
if used + tokens > quota then return {0, used} end
used = redis.call('HINCRBY', KEYS[1], 'tokens', tokens)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(key: ManagedKey) -> list[str]:
    """The key as flat field/value pairs (``None`` left out)."""
    record: dict[str, Any] = msgspec.to_builtins(key)
    record["policy"] = msgspec.json.encode(record["policy"]).decode()
    pairs: list[str] = []
    for name, value in record.items():
        if value is not None:
            pairs += [name, value if isinstance(value, str) else repr(value)]
    return pairs


def _key(raw: Mapping[Any, Any]) -> ManagedKey | None:
    if not raw:
        return None
    record: dict[str, Any] = {_text(name): _text(value) for name, value in raw.items()}
    record["policy"] = msgspec.json.decode(record.get("policy", "{}"))
    return normalized(msgspec.convert(record, ManagedKey, strict=False))


class RedisKeyStore:
    """``redis`` is built (and closed) by the caller. Any Redis failure is
    ``BackendUnavailable``."""

    def __init__(
        self, redis: Redis, prefix: str = "gateway:keys", *, health_name: str = "key_store"
    ) -> None:
        self.prefix = prefix
        self.health_name = health_name
        self._redis = redis
        self._create = redis.register_script(_CREATE_LUA)
        self._set_field = redis.register_script(_SET_FIELD_LUA)
        self._reserve = redis.register_script(_RESERVE_LUA)

    def _record(self, key_id: str) -> str:
        return f"{self.prefix}:key:{key_id}"

    async def create(self, key: ManagedKey) -> None:
        keys = [self._record(key.id), f"{self.prefix}:by_hash", f"{self.prefix}:ids"]
        with translated("create a key"):
            created = await self._create(keys=keys, args=[key.id, key.key_hash, *_fields(key)])
        if not created:
            raise InvalidRequest(f"A key with this id or hash exists already: {key.id}")

    async def find_by_hash(self, key_hash: str) -> ManagedKey | None:
        with translated("find a key"):
            key_id = await self._redis.hget(f"{self.prefix}:by_hash", key_hash)
            if key_id is None:
                return None
            return _key(await self._redis.hgetall(self._record(_text(key_id))))

    async def get(self, key_id: str) -> ManagedKey | None:
        with translated("read a key"):
            return _key(await self._redis.hgetall(self._record(key_id)))

    async def list_keys(self) -> list[ManagedKey]:
        with translated("list the keys"):
            ids = await self._redis.smembers(f"{self.prefix}:ids")
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_id in ids:
                    pipe.hgetall(self._record(_text(key_id)))
                records = await pipe.execute()
        keys = [key for key in map(_key, records) if key is not None]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, now: float) -> bool:
        with translated("revoke a key"):
            done = await self._set_field(
                keys=[self._record(key_id)], args=["revoked_at", repr(now), "1"]
            )
        return bool(done)

    async def touch(self, key_id: str, now: float) -> None:
        with translated("record a key's use"):
            await self._set_field(
                keys=[self._record(key_id)], args=["last_used_at", repr(now), "0"]
            )

    async def add_usage(self, key_id: str, period: str, tokens: int) -> int:
        counter = f"{self.prefix}:usage:{key_id}:{period}"
        with translated("count a key's usage"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(counter, "tokens", tokens)
                pipe.expire(counter, _USAGE_TTL_S.get(len(period), _DEFAULT_USAGE_TTL_S))
                total, _ = await pipe.execute()
        return int(total)

    async def reserve_usage(
        self, key_id: str, period: str, tokens: int, quota: int
    ) -> tuple[bool, int]:
        counter = f"{self.prefix}:usage:{key_id}:{period}"
        ttl = _USAGE_TTL_S.get(len(period), _DEFAULT_USAGE_TTL_S)
        with translated("reserve a key's usage"):
            done, used = await self._reserve(keys=[counter], args=[tokens, quota, ttl])
        return bool(done), int(used)

    async def usage(self, key_id: str, period: str) -> int:
        with translated("read a key's usage"):
            total = await self._redis.hget(f"{self.prefix}:usage:{key_id}:{period}", "tokens")
        return int(total or 0)

    async def check(self) -> ServiceHealth:
        return await ping_health(self._redis, self.health_name)

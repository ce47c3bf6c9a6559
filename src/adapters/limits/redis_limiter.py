"""``RedisRateLimiter``: the token buckets of ``InProcessRateLimiter`` kept in Redis, so
every gateway instance sharing it admits no more than the limit in total.

Check-and-take is one Lua script (atomic on the server: no other command runs between
reading the buckets and writing them). Each key's buckets are a hash ``<prefix>:<key_id>``
(``r``, ``t``: levels; ``ts``: when they were last refilled) that expires once both
buckets would be full again (about two minutes after the last call).

Time is the caller's ``now``, not Redis ``TIME``: tests drive it, and the same sequence
gives the same decisions as the in-process limiter. Instances' clocks differ by what NTP
allows (milliseconds); a lagging clock refills nothing (``ts`` never moves back), a
leading one refills at most ``skew × limit / 60`` extra. ``TIME`` in the script would
remove even that, at the price of deterministic tests."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from adapters.limits.in_process_limiter import admission
from adapters.limits.redis_common import ping_health, translated
from domain.health import ServiceHealth
from domain.limits import Admission, RateLimit

# The arithmetic of ``in_process_limiter.refill``/``time_to_full``, operation for
# operation; levels go back as ``%.17g`` strings (a Lua number reply would be truncated
# to an integer).
TOKEN_BUCKETS_LUA = """
local now, rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local r, t, ts = tonumber(state[1]), tonumber(state[2]), tonumber(state[3])
if r == nil or t == nil or ts == nil then
  r, t, ts = rpm, tpm, now
else
  local elapsed = math.max(0, now - ts)
  r = math.min(rpm, r + elapsed * rpm / 60)
  t = math.min(tpm, t + elapsed * tpm / 60)
  ts = math.max(now, ts)
end
local allowed = 1
if ARGV[5] == 'admit' then
  if r >= 1 and t >= tokens then
    r = r - 1
    t = t - tokens
  else
    allowed = 0
  end
else
  t = math.min(tpm, t - tokens)
end
local r_s, t_s = string.format('%.17g', r), string.format('%.17g', t)
redis.call('HSET', KEYS[1], 'r', r_s, 't', t_s, 'ts', string.format('%.17g', ts))
local full_s = 0
if rpm > 0 then full_s = math.max(full_s, (rpm - r) * 60 / rpm) end
if tpm > 0 then full_s = math.max(full_s, (tpm - t) * 60 / tpm) end
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(120, full_s + 60) * 1000))
return {allowed, r_s, t_s}
"""


class RedisRateLimiter:
    """``redis`` is built (and closed) by the caller. Any Redis failure is
    ``BackendUnavailable``; whether to admit without a limiter is the caller's policy."""

    def __init__(
        self, redis: Redis, prefix: str = "gateway:rl", *, health_name: str = "rate_limiter"
    ) -> None:
        self.prefix = prefix
        self.health_name = health_name
        self._redis = redis
        # Computes the SHA locally; nothing is sent until the first call.
        self._script = redis.register_script(TOKEN_BUCKETS_LUA)

    async def admit(self, key_id: str, limit: RateLimit, tokens: int, now: float) -> Admission:
        tokens = max(0, tokens)
        with translated("check a rate limit"):
            allowed, requests, left = await self._run(key_id, limit, tokens, now, "admit")
        return admission(limit, float(requests), float(left), tokens, bool(allowed))

    async def reconcile(self, key_id: str, limit: RateLimit, delta_tokens: int, now: float) -> None:
        with translated("reconcile a rate limit"):
            await self._run(key_id, limit, delta_tokens, now, "reconcile")

    async def check(self) -> ServiceHealth:
        return await ping_health(self._redis, self.health_name)

    async def _run(self, key_id: str, limit: RateLimit, tokens: int, now: float, mode: str) -> Any:
        keys = [f"{self.prefix}:{key_id}"]
        rpm, tpm = limit.requests_per_minute, limit.tokens_per_minute
        args: list[str | int] = [repr(now), rpm, tpm, tokens, mode]
        try:
            return await self._redis.evalsha(self._script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # A restarted (or flushed) Redis forgot the script: EVAL sends it once and
            # caches it again, in the same round trip.
            return await self._redis.eval(TOKEN_BUCKETS_LUA, len(keys), *keys, *args)

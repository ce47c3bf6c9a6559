"""``RedisUsageHistory``: the buckets of ``domain.usage`` in Redis, shared by every gateway
instance. One hash per key, window and bucket, ``<prefix>:<key_id>:<window>:<start>``
(``r``: requests, ``t``: tokens), that expires once its bucket left the window: storage
is bounded by the number of keys in use, whatever the traffic.

A request's record costs no round trip: counts add up in process and ``flush`` sends
them all in one pipeline (HINCRBYs and EXPIREs, no transaction: each command is atomic,
the counts add up across instances), every ``flush_every_s`` from ``run`` (a background
task of the composition root, which flushes once more at shutdown) and before this
instance reads a series. So another instance sees a count within about a second; a
crash loses at most that second's counts. Expiry is relative to the caller's ``now``
(as the rate limiter's time is), so tests drive it."""

from __future__ import annotations

import asyncio
import math

import structlog
from redis.asyncio import Redis

from adapters.limits.redis_common import ping_health, translated
from domain.errors import BackendUnavailable
from domain.health import ServiceHealth
from domain.usage import UsageSeries, UsageWindow, series_from

log = structlog.get_logger("gateway.usage_history")
# Bucket -> [requests, tokens, seconds it has left to live when last counted].
_Pending = dict[tuple[str, UsageWindow, int], list[int]]


class RedisUsageHistory:
    """``redis`` is built (and closed) by the caller. Any Redis failure is
    ``BackendUnavailable``; counts a flush could not send are kept for the next one, up
    to ``max_pending`` buckets (beyond, the oldest are dropped: memory stays bounded
    while Redis is down)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "gateway:usage",
        *,
        flush_every_s: float = 1.0,
        max_pending: int = 100_000,
        health_name: str = "usage_history",
    ) -> None:
        self.prefix = prefix
        self.flush_every_s = flush_every_s
        self.max_pending = max_pending
        self.health_name = health_name
        self._redis = redis
        self._pending: _Pending = {}

    def _name(self, key_id: str, window: UsageWindow, start: int) -> str:
        return f"{self.prefix}:{key_id}:{window.value}:{start}"

    async def record(self, key_id: str, requests: int, tokens: int, now: float) -> None:
        for window in UsageWindow:
            start = window.bucket_start(now)
            ttl = max(1, math.ceil(start + window.retention_s - now))
            counts = self._pending.get((key_id, window, start))
            if counts is None:
                self._pending[(key_id, window, start)] = [requests, tokens, ttl]
            else:
                counts[0] += requests
                counts[1] += tokens
                counts[2] = ttl
        while len(self._pending) > self.max_pending:
            del self._pending[next(iter(self._pending))]

    async def flush(self) -> None:
        """Send what this instance counted since the last flush."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        pipe = self._redis.pipeline(transaction=False)
        for (key_id, window, start), (requests, tokens, ttl) in pending.items():
            name = self._name(key_id, window, start)
            if requests:
                pipe.hincrby(name, "r", requests)
            if tokens:
                pipe.hincrby(name, "t", tokens)
            pipe.expire(name, ttl)
        try:
            with translated("record keys' usage"):
                await pipe.execute()
        except BackendUnavailable:
            # Sent again with the next flush (added to what was counted meanwhile).
            for bucket, (requests, tokens, ttl) in pending.items():
                counts = self._pending.setdefault(bucket, [0, 0, ttl])
                counts[0] += requests
                counts[1] += tokens
            raise

    async def run(self) -> None:
        """Flush every ``flush_every_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.flush_every_s)
            try:
                await self.flush()
            except BackendUnavailable as exc:
                log.warning("usage history not flushed", error=exc.message)

    async def series(self, key_id: str, window: UsageWindow, now: float) -> UsageSeries:
        await self.flush()
        starts = window.starts(now)
        pipe = self._redis.pipeline(transaction=False)
        for start in starts:
            pipe.hmget(self._name(key_id, window, start), "r", "t")
        with translated("read a key's usage"):
            replies = await pipe.execute()
        counts = {
            start: (int(r or 0), int(t or 0))
            for start, (r, t) in zip(starts, replies, strict=True)
            if r is not None or t is not None
        }
        return series_from(key_id, window, now, counts)

    async def check(self) -> ServiceHealth:
        return await ping_health(self._redis, self.health_name)

"""``RedisUsageHistory``: the buckets of ``domain.usage`` in Redis, shared by every gateway
instance. One hash per key, window and bucket, ``<prefix>:<key_id>:<window>:<start>``
(``r``: requests, ``t``: tokens), that expires once its bucket left the window: storage
is bounded by the number of keys in use, whatever the traffic.

A record is one round trip (a pipeline of HINCRBYs and EXPIREs, no transaction: each
command is atomic, the counts add up across instances). Expiry is relative to the
caller's ``now`` (as the rate limiter's time is), so tests drive it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.errors import BackendUnavailable
from domain.health import ServiceHealth, Status
from domain.usage import UsageSeries, UsageWindow, series_from


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise BackendUnavailable(f"Redis could not {action}: {exc}") from exc


class RedisUsageHistory:
    """``redis`` is built (and closed) by the caller. Any Redis failure is
    ``BackendUnavailable``."""

    def __init__(
        self, redis: Redis, prefix: str = "gateway:usage", *, health_name: str = "usage_history"
    ) -> None:
        self.prefix = prefix
        self.health_name = health_name
        self._redis = redis

    def _name(self, key_id: str, window: UsageWindow, start: int) -> str:
        return f"{self.prefix}:{key_id}:{window.value}:{start}"

    async def record(self, key_id: str, requests: int, tokens: int, now: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for window in UsageWindow:
            start = window.bucket_start(now)
            name = self._name(key_id, window, start)
            if requests:
                pipe.hincrby(name, "r", requests)
            if tokens:
                pipe.hincrby(name, "t", tokens)
            pipe.expire(name, max(1, math.ceil(start + window.retention_s - now)))
        with _translated("record a key's usage"):
            await pipe.execute()

    async def series(self, key_id: str, window: UsageWindow, now: float) -> UsageSeries:
        starts = window.starts(now)
        pipe = self._redis.pipeline(transaction=False)
        for start in starts:
            pipe.hmget(self._name(key_id, window, start), "r", "t")
        with _translated("read a key's usage"):
            replies = await pipe.execute()
        counts = {
            start: (int(r or 0), int(t or 0))
            for start, (r, t) in zip(starts, replies, strict=True)
            if r is not None or t is not None
        }
        return series_from(key_id, window, now, counts)

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            with _translated("answer"):
                await self._redis.ping()
        except BackendUnavailable as exc:
            elapsed = round((time.perf_counter() - started) * 1000, 2)
            return ServiceHealth(self.health_name, Status.UNHEALTHY, elapsed, str(exc))
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return ServiceHealth(self.health_name, Status.HEALTHY, elapsed)

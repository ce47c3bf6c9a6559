"""What the Redis adapters of keys, limits and usage share: one translation of Redis's
failures into the port's, and one health check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.errors import BackendUnavailable
from domain.health import ServiceHealth, Status


@contextmanager
def translated(action: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise BackendUnavailable(f"Redis could not {action}: {exc}") from exc


async def ping_health(redis: Redis, name: str) -> ServiceHealth:
    """Healthy when Redis answers a PING, with the time it took."""
    started = time.perf_counter()
    try:
        with translated("answer"):
            await redis.ping()
    except BackendUnavailable as exc:
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return ServiceHealth(name, Status.UNHEALTHY, elapsed, str(exc))
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return ServiceHealth(name, Status.HEALTHY, elapsed)

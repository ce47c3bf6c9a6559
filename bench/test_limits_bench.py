"""The cost of a rate-limit check, in process and on Redis over loopback, and the issue's
measure (two instances sharing Redis, 300 concurrent requests at 60/min).

    .venv/bin/python -m pytest bench/test_limits_bench.py -s

Not part of the suite (``testpaths`` is ``tests``); it asserts nothing about time, it
reports. Targets: check p95 <= 0.5 ms in process, <= 1.5 ms on Redis (loopback).

Two figures per adapter: pytest-benchmark's, one ``run_until_complete`` per check (the
event loop's own overhead included: an upper bound), and "in loop", each ``await
admit(...)`` timed inside one coroutine, as a request handler pays it."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from tests.contract.memory_fixtures import RedisServer, start_redis

from adapters.limits.in_process_limiter import InProcessRateLimiter
from adapters.limits.redis_limiter import RedisRateLimiter
from domain.limits import RateLimit
from ports.rate_limiter import RateLimiter

KEYS = [f"key-{n}" for n in range(1_000)]
LIMIT = RateLimit(requests_per_minute=600, tokens_per_minute=200_000)
NOW = 1_700_000_000.0
ROUNDS = 5_000
TARGET_MS = {"in-process": 0.5, "redis": 1.5}


def percentiles(seconds: list[float]) -> tuple[float, float]:
    data = sorted(seconds)
    return statistics.median(data) * 1000, data[int(0.95 * (len(data) - 1))] * 1000


async def timed_in_loop(limiter: RateLimiter) -> list[float]:
    timings = []
    for n in range(ROUNDS):
        now = NOW + n * 0.001
        started = time.perf_counter()
        await limiter.admit(KEYS[n % len(KEYS)], LIMIT, 300, now)
        timings.append(time.perf_counter() - started)
    return timings


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.mark.parametrize("adapter", ["in-process", "redis"])
def test_check_cost(benchmark: Any, adapter: str, request: pytest.FixtureRequest) -> None:
    loop = asyncio.new_event_loop()
    client: Redis | None = None
    limiter: RateLimiter
    if adapter == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client = server.client()
        limiter = RedisRateLimiter(client, prefix="bench:rl")
    else:
        limiter = InProcessRateLimiter()
    turn = iter(range(10**9))

    def check() -> None:
        n = next(turn)
        loop.run_until_complete(limiter.admit(KEYS[n % len(KEYS)], LIMIT, 300, NOW + n * 0.001))

    benchmark.pedantic(check, rounds=ROUNDS, warmup_rounds=200, iterations=1)
    p50, p95 = percentiles(list(benchmark.stats.stats.sorted_data))
    in_p50, in_p95 = percentiles(loop.run_until_complete(timed_in_loop(limiter)))
    benchmark.extra_info.update({"p95_ms": round(p95, 4), "in_loop_p95_ms": round(in_p95, 4)})
    print(
        f"\n{adapter} check: p50 {p50:.3f} ms, p95 {p95:.3f} ms (run_until_complete each); "
        f"in loop p50 {in_p50:.3f} ms, p95 {in_p95:.3f} ms; target p95 <= "
        f"{TARGET_MS[adapter]} ms; {ROUNDS} checks over {len(KEYS)} keys"
    )
    if client is not None:
        loop.run_until_complete(client.aclose())
    loop.close()


def test_two_instances_sharing_redis(redis_server: RedisServer) -> None:
    """300 concurrent admits at 60/min through two limiters on two connection pools."""

    async def burst() -> tuple[int, float]:
        clients = [
            Redis.from_pool(BlockingConnectionPool(port=redis_server.port, max_connections=16))
            for _ in range(2)
        ]
        limiters = [RedisRateLimiter(client, prefix="bench:rl:burst") for client in clients]
        limit = RateLimit(requests_per_minute=60, tokens_per_minute=1_000_000)
        started = time.perf_counter()
        decisions = await asyncio.gather(
            *(limiters[n % 2].admit("shared", limit, 100, NOW) for n in range(300))
        )
        elapsed = time.perf_counter() - started
        for client in clients:
            await client.aclose()
        return sum(d.allowed for d in decisions), elapsed

    admitted, elapsed = asyncio.run(burst())
    print(f"\ntwo instances, 300 concurrent at 60/min: {admitted} admitted, {elapsed * 1e3:.1f} ms")
    assert admitted == 60

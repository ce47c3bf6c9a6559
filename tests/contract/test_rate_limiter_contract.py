"""The RateLimiter contract, run on every adapter (fake, in process, Redis on a real
private redis-server): token buckets refilled evenly over a minute, all or nothing; then
what only one adapter promises: the in-process memory bound, and Redis's atomicity
across instances, its script cache and its faults."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.limits.in_process_limiter import InProcessRateLimiter
from adapters.limits.redis_limiter import RedisRateLimiter
from domain.errors import BackendUnavailable
from domain.health import Status
from domain.limits import Admission, RateLimit
from ports.rate_limiter import RateLimiter
from tests.conftest import free_port
from tests.fakes.fake_rate_limiter import FakeRateLimiter

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer

pytest_plugins = ["tests.contract.limits_fixtures"]

NOW = 1_700_000_000.0
FIVE_A_MINUTE = RateLimit(requests_per_minute=5, tokens_per_minute=100_000)
TOKENS_1000 = RateLimit(requests_per_minute=100, tokens_per_minute=1_000)


async def test_admits_up_to_the_limit_then_denies(rate_limiter: RateLimiter) -> None:
    for n in range(5):
        admitted = await rate_limiter.admit("k", FIVE_A_MINUTE, 10, NOW)
        assert admitted.allowed
        assert admitted.remaining_requests == 4 - n
        assert admitted.retry_after_s == 0
    denied = await rate_limiter.admit("k", FIVE_A_MINUTE, 10, NOW)
    assert not denied.allowed
    assert denied.remaining_requests == 0
    assert denied.retry_after_s == pytest.approx(12.0), "one request comes back every 12 s"


async def test_the_buckets_refill_evenly_over_a_minute(rate_limiter: RateLimiter) -> None:
    for _ in range(5):
        await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW)
    early = await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW + 9)
    assert not early.allowed
    assert early.retry_after_s == pytest.approx(3.0)
    assert (await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW + 12)).allowed
    assert not (await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW + 12)).allowed
    later = await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW + 12 + 600)
    assert later.allowed
    assert later.remaining_requests == 4, "full again, never above the limit"


async def test_too_many_tokens_are_denied_even_with_requests_left_and_take_nothing(
    rate_limiter: RateLimiter,
) -> None:
    first = await rate_limiter.admit("k", TOKENS_1000, 800, NOW)
    assert (first.allowed, first.remaining_requests, first.remaining_tokens) == (True, 99, 200)
    denied = await rate_limiter.admit("k", TOKENS_1000, 300, NOW)
    assert not denied.allowed
    assert (denied.remaining_requests, denied.remaining_tokens) == (99, 200), "nothing taken"
    assert denied.retry_after_s == pytest.approx(6.0), "100 tokens at 1000/min"
    fits = await rate_limiter.admit("k", TOKENS_1000, 200, NOW)
    assert (fits.allowed, fits.remaining_requests, fits.remaining_tokens) == (True, 98, 0)


async def test_a_request_larger_than_the_whole_budget_never_fits(
    rate_limiter: RateLimiter,
) -> None:
    denied = await rate_limiter.admit("k", TOKENS_1000, 1_001, NOW)
    assert not denied.allowed
    assert denied.retry_after_s == 60.0
    after = await rate_limiter.admit("k", TOKENS_1000, 1_000, NOW)
    assert (after.allowed, after.remaining_requests, after.remaining_tokens) == (True, 99, 0)


async def test_reconcile_gives_back_and_takes(rate_limiter: RateLimiter) -> None:
    await rate_limiter.admit("k", TOKENS_1000, 500, NOW)
    await rate_limiter.reconcile("k", TOKENS_1000, -300, NOW)  # used 200 of 500
    assert (await rate_limiter.admit("k", TOKENS_1000, 0, NOW)).remaining_tokens == 800
    await rate_limiter.reconcile("k", TOKENS_1000, -5_000, NOW)
    assert (await rate_limiter.admit("k", TOKENS_1000, 0, NOW)).remaining_tokens == 1_000, (
        "never above capacity"
    )
    await rate_limiter.reconcile("k", TOKENS_1000, 2_200, NOW)  # far more than estimated
    owing = await rate_limiter.admit("k", TOKENS_1000, 1, NOW)
    assert not owing.allowed
    assert owing.remaining_tokens == 0
    assert owing.retry_after_s == pytest.approx(1_201 * 60 / 1_000), "the debt is paid first"
    assert owing.reset_tokens_s == pytest.approx(2_200 * 60 / 1_000)
    assert (await rate_limiter.admit("k", TOKENS_1000, 1, NOW + 72.06 + 0.01)).allowed


async def test_remaining_and_reset_agree(rate_limiter: RateLimiter) -> None:
    limit = RateLimit(requests_per_minute=30, tokens_per_minute=6_000)
    for _ in range(6):
        admitted = await rate_limiter.admit("k", limit, 500, NOW)
    assert admitted == Admission(
        allowed=True,
        limit_requests=30,
        remaining_requests=24,
        reset_requests_s=12.0,  # 6 requests at 30/min
        limit_tokens=6_000,
        remaining_tokens=3_000,
        reset_tokens_s=30.0,  # 3000 tokens at 6000/min
        retry_after_s=0.0,
    )
    later = await rate_limiter.admit("k", limit, 0, NOW + 10)
    assert later.reset_requests_s == pytest.approx(12.0 - 10 + 2)  # refilled 5, took 1
    assert later.remaining_requests == 28
    assert later.reset_tokens_s == pytest.approx(20.0)
    assert later.remaining_tokens == 4_000


async def test_keys_are_independent(rate_limiter: RateLimiter) -> None:
    for _ in range(5):
        await rate_limiter.admit("alice", FIVE_A_MINUTE, 0, NOW)
    assert not (await rate_limiter.admit("alice", FIVE_A_MINUTE, 0, NOW)).allowed
    bob = await rate_limiter.admit("bob", FIVE_A_MINUTE, 0, NOW)
    assert bob.allowed
    assert bob.remaining_requests == 4


async def test_a_clock_that_goes_back_refills_nothing(rate_limiter: RateLimiter) -> None:
    for _ in range(5):
        await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW)
    assert not (await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW - 30)).allowed
    assert not (await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW + 6)).allowed
    assert (await rate_limiter.admit("k", FIVE_A_MINUTE, 0, NOW + 12)).allowed


async def test_decisions_match_the_fake_on_a_random_sequence(rate_limiter: RateLimiter) -> None:
    """Congruence, as qdrant-client's tests do: the same calls, the same answers."""
    reference = FakeRateLimiter()
    rng = random.Random(6)
    limits = [RateLimit(10, 2_000), RateLimit(3, 500)]
    now = NOW
    for _ in range(300):
        key, limit = rng.choice([("a", limits[0]), ("b", limits[0]), ("c", limits[1])])
        now += rng.choice([0.0, 0.0, 0.25, 1.5, 7.0])
        if rng.random() < 0.2:
            delta = rng.randint(-400, 400)
            await rate_limiter.reconcile(key, limit, delta, now)
            await reference.reconcile(key, limit, delta, now)
        else:
            tokens = rng.randint(0, 600)
            got = await rate_limiter.admit(key, limit, tokens, now)
            assert got == await reference.admit(key, limit, tokens, now)


async def test_check_is_healthy(rate_limiter: RateLimiter) -> None:
    assert (await rate_limiter.check()).status is Status.HEALTHY


# --- in process only ---------------------------------------------------------------------


async def test_in_process_buckets_are_dropped_once_full_again() -> None:
    limiter = InProcessRateLimiter()
    for name in "abcde":
        await limiter.admit(name, FIVE_A_MINUTE, 0, NOW)
    assert len(limiter) == 5
    for _ in range(3):  # 12 s later every one of them is full again: two dropped a call
        await limiter.admit("z", FIVE_A_MINUTE, 0, NOW + 12)
    assert len(limiter) == 1
    assert (await limiter.admit("a", FIVE_A_MINUTE, 0, NOW + 12)).remaining_requests == 4


async def test_in_process_memory_is_bounded_by_max_keys() -> None:
    limiter = InProcessRateLimiter(max_keys=10)
    for n in range(100):
        await limiter.admit(f"key-{n}", FIVE_A_MINUTE, 0, NOW)
    assert len(limiter) == 10


# --- Redis only --------------------------------------------------------------------------


@pytest.mark.redis
async def test_two_instances_on_two_connections_admit_the_limit_exactly(
    redis_server: RedisServer,
) -> None:
    """The issue's measure: two gateways sharing Redis, 300 concurrent requests at 60/min.
    Each client has its own pool, blocking at 16 connections (the default pool raises
    "Too many connections" beyond 100, which a gateway under load must not do)."""
    clients = [
        Redis.from_pool(BlockingConnectionPool(port=redis_server.port, max_connections=16))
        for _ in range(2)
    ]
    limiters = [RedisRateLimiter(client, prefix="test:rl:atomic") for client in clients]
    limit = RateLimit(requests_per_minute=60, tokens_per_minute=1_000_000)
    try:
        decisions = await asyncio.gather(
            *(limiters[n % 2].admit("shared", limit, 100, NOW) for n in range(300))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert sum(d.allowed for d in decisions) == 60
    assert sorted(d.remaining_requests for d in decisions if d.allowed) == list(range(60))


@pytest.mark.redis
async def test_a_flushed_script_cache_is_refilled(redis_client: Redis) -> None:
    limiter = RedisRateLimiter(redis_client, prefix="test:rl:noscript")
    assert (await limiter.admit("k", FIVE_A_MINUTE, 0, NOW)).allowed
    await redis_client.script_flush()  # as a restarted Redis
    assert (await limiter.admit("k", FIVE_A_MINUTE, 0, NOW)).remaining_requests == 3
    assert (await redis_client.script_exists(limiter._script.sha)) == [True]


@pytest.mark.redis
async def test_a_keys_buckets_expire_after_they_would_be_full(redis_client: Redis) -> None:
    limiter = RedisRateLimiter(redis_client, prefix="test:rl:ttl")
    await limiter.admit("k", FIVE_A_MINUTE, 0, NOW)
    assert 60_000 < await redis_client.pttl("test:rl:ttl:k") <= 120_000
    await limiter.reconcile("k", TOKENS_1000, 10_000, NOW)  # ten minutes in debt
    assert 600_000 < await redis_client.pttl("test:rl:ttl:k") <= 720_000


@pytest.mark.redis
async def test_a_closed_port_is_backend_unavailable() -> None:
    client = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    limiter = RedisRateLimiter(client)
    try:
        with pytest.raises(BackendUnavailable):
            await limiter.admit("k", FIVE_A_MINUTE, 1, NOW)
        with pytest.raises(BackendUnavailable):
            await limiter.reconcile("k", FIVE_A_MINUTE, 1, NOW)
        assert (await limiter.check()).status is Status.UNHEALTHY
    finally:
        await client.aclose()

"""The UsageHistory contract, run on every adapter (fake, in process, Redis on a real
private redis-server): a key's requests and tokens land in the buckets holding the time
they were recorded, windows are complete and ordered, old buckets leave the window; then
what each real adapter promises about its storage being bounded, and Redis's faults."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.limits.in_process_usage_history import InProcessUsageHistory
from adapters.limits.redis_usage_history import RedisUsageHistory
from domain.errors import BackendUnavailable
from domain.health import Status
from domain.usage import UsageWindow
from ports.usage_history import UsageHistory
from tests.conftest import free_port

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import RedisServer

pytest_plugins = ["tests.contract.limits_fixtures"]

NOW = 1_700_000_010.0  # 30 s into a minute, 810 s into an hour (UTC)
MINUTE, HOUR = 60, 3600


async def test_an_unknown_key_has_a_complete_window_of_zeros(usage_history: UsageHistory) -> None:
    for window, count, size in ((UsageWindow.HOUR, 60, MINUTE), (UsageWindow.DAY, 24, HOUR)):
        series = await usage_history.series("key_nobody", window, NOW)
        assert series.key_id == "key_nobody"
        assert series.window is window
        assert len(series.buckets) == count
        starts = [b.start for b in series.buckets]
        assert all(b - a == size for a, b in itertools.pairwise(starts))
        assert starts[-1] <= NOW < starts[-1] + size  # the last one holds now
        assert all(s % size == 0 for s in starts)
        assert (series.requests, series.tokens) == (0, 0)


async def test_records_land_in_the_buckets_holding_their_time(
    usage_history: UsageHistory,
) -> None:
    await usage_history.record("key_a", 1, 100, NOW - 5 * MINUTE)
    await usage_history.record("key_a", 1, 40, NOW - 5 * MINUTE + 10)
    await usage_history.record("key_a", 1, 7, NOW)
    await usage_history.record("key_a", 0, -2, NOW)  # a settlement below the estimate

    hour = await usage_history.series("key_a", UsageWindow.HOUR, NOW)
    assert [(b.requests, b.tokens) for b in hour.buckets[-6:]] == [
        (2, 140), (0, 0), (0, 0), (0, 0), (0, 0), (1, 5),
    ]  # fmt: skip
    assert (hour.requests, hour.tokens) == (3, 145)
    day = await usage_history.series("key_a", UsageWindow.DAY, NOW)
    assert (day.requests, day.tokens) == (3, 145)
    assert sum(1 for b in day.buckets if b.requests) in (1, 2)  # one hour, or two


async def test_keys_are_counted_apart(usage_history: UsageHistory) -> None:
    await usage_history.record("key_a", 1, 10, NOW)
    await usage_history.record("key_b", 2, 20, NOW)
    a = await usage_history.series("key_a", UsageWindow.HOUR, NOW)
    b = await usage_history.series("key_b", UsageWindow.HOUR, NOW)
    assert (a.requests, a.tokens, b.requests, b.tokens) == (1, 10, 2, 20)


async def test_old_buckets_leave_the_window(usage_history: UsageHistory) -> None:
    await usage_history.record("key_a", 1, 10, NOW)
    later = NOW + 61 * MINUTE
    await usage_history.record("key_a", 1, 1, later)
    assert (await usage_history.series("key_a", UsageWindow.HOUR, later)).tokens == 1
    assert (await usage_history.series("key_a", UsageWindow.DAY, later)).tokens == 11
    much_later = NOW + 25 * HOUR
    await usage_history.record("key_a", 1, 100, much_later)
    assert (await usage_history.series("key_a", UsageWindow.DAY, much_later)).tokens == 100


async def test_concurrent_records_add_up(usage_history: UsageHistory) -> None:
    for _ in range(10):
        await asyncio.gather(*(usage_history.record("key_a", 1, 3, NOW) for _ in range(20)))
    series = await usage_history.series("key_a", UsageWindow.HOUR, NOW)
    assert (series.requests, series.tokens) == (200, 600)
    assert (await usage_history.check()).status is Status.HEALTHY


# --- bounded storage ---------------------------------------------------------------------


async def test_in_process_keeps_only_the_windows_buckets() -> None:
    history = InProcessUsageHistory(max_keys=3)
    for minute in range(3 * 24 * 60):  # three days, a record a minute
        await history.record("key_a", 1, 1, NOW + minute * MINUTE)
    assert history.bucket_count("key_a") <= 61 + 25
    end = NOW + (3 * 24 * 60 - 1) * MINUTE
    assert (await history.series("key_a", UsageWindow.HOUR, end)).requests == 60
    assert (await history.series("key_a", UsageWindow.DAY, end)).requests >= 23 * 60
    for n in range(10):
        await history.record(f"key_{n}", 1, 1, NOW)
    assert len(history) == 3  # the least recently recorded forgotten


@pytest.mark.redis
async def test_redis_buckets_expire_once_out_of_their_window(redis_client: Redis) -> None:
    history = RedisUsageHistory(redis_client, prefix="test:usage:ttl")
    await history.record("key_a", 1, 10, NOW)
    await history.flush()
    names = [n async for n in redis_client.scan_iter(match="test:usage:ttl:key_a:*")]
    assert len(names) == 2  # one bucket per window
    for name in names:
        ttl = await redis_client.ttl(name)
        limit = 61 * MINUTE if b":1h:" in name else 25 * HOUR
        assert 0 < ttl <= limit, (name, ttl)
    # The key's id is the only thing about it stored (no secret: the port never sees one).
    assert all(n.startswith(b"test:usage:ttl:key_a:") for n in names)


@pytest.mark.redis
async def test_redis_instances_share_counts_once_flushed(redis_client: Redis) -> None:
    """A record costs no round trip: the other instance sees it after the recording
    instance's flush (every second in the gateway); the recording one at once."""
    one = RedisUsageHistory(redis_client, prefix="test:usage:shared")
    other = RedisUsageHistory(redis_client, prefix="test:usage:shared")
    await one.record("key_a", 1, 10, NOW)
    await other.record("key_a", 1, 5, NOW)
    assert [n async for n in redis_client.scan_iter(match="test:usage:shared:*")] == []
    assert (await one.series("key_a", UsageWindow.HOUR, NOW)).tokens == 10  # its own
    await other.flush()
    assert (await one.series("key_a", UsageWindow.HOUR, NOW)).tokens == 15
    assert (await other.series("key_a", UsageWindow.DAY, NOW)).requests == 2
    await one.flush()  # nothing pending: nothing sent twice
    assert (await other.series("key_a", UsageWindow.HOUR, NOW)).tokens == 15


@pytest.mark.redis
async def test_the_background_flush_sends_the_counts(redis_client: Redis) -> None:
    one = RedisUsageHistory(redis_client, prefix="test:usage:run", flush_every_s=0.05)
    other = RedisUsageHistory(redis_client, prefix="test:usage:run")
    task = asyncio.create_task(one.run())
    try:
        await one.record("key_a", 1, 4, NOW)
        for _ in range(100):
            if (await other.series("key_a", UsageWindow.HOUR, NOW)).tokens == 4:
                break
            await asyncio.sleep(0.02)
        assert (await other.series("key_a", UsageWindow.HOUR, NOW)).tokens == 4
    finally:
        task.cancel()


@pytest.mark.redis
async def test_counts_survive_a_redis_outage(private_redis_server: RedisServer) -> None:
    client = private_redis_server.client()
    history = RedisUsageHistory(client, prefix="test:usage:down", max_pending=1_000)
    try:
        private_redis_server.kill()
        await history.record("key_a", 1, 7, NOW)
        with pytest.raises(BackendUnavailable):
            await history.flush()
        assert (await history.check()).status is Status.UNHEALTHY
        await history.record("key_a", 1, 3, NOW)  # counted meanwhile: added up
        private_redis_server.start()
        await history.flush()
        series = await history.series("key_a", UsageWindow.HOUR, NOW)
        assert (series.requests, series.tokens) == (2, 10)
        # Memory stays bounded while Redis is down: the oldest buckets go first.
        private_redis_server.kill()
        for minute in range(1_000):
            await history.record(f"key_{minute}", 1, 1, NOW + minute * MINUTE)
        assert len(history._pending) <= 1_000
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_closed_port_is_backend_unavailable() -> None:
    client = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    history = RedisUsageHistory(client)
    try:
        await history.record("k", 1, 1, NOW)  # counted in process: no I/O
        with pytest.raises(BackendUnavailable):
            await history.flush()
        with pytest.raises(BackendUnavailable):
            await history.series("k", UsageWindow.HOUR, NOW)
        assert (await history.check()).status is Status.UNHEALTHY
    finally:
        await client.aclose()

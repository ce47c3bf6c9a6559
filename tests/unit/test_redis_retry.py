"""The Redis retry policy and the up/down state it keeps, on a fake clock: which failures
are retried, how long the waits grow, that the deadline bounds them, and that a change
of state is logged once, without credentials."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from structlog.testing import capture_logs

from adapters.memory.redis_retry import BACKGROUND, REQUEST_PATH, RedisLink, RetryPolicy, reason
from domain.errors import MemoryUnavailable
from domain.health import Status
from tests.fakes.fake_clock import FakeClock

REFUSED = RedisConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")


@dataclass
class Sleeps:
    """The waits asked for, which move the fake clock."""

    clock: FakeClock
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@dataclass
class FlakyRedis:
    """A command that fails with ``failures`` (in order) before it answers ``answer``,
    each try taking ``takes_s`` of the fake clock."""

    clock: FakeClock
    failures: list[BaseException] = field(default_factory=list)
    answer: str = "OK"
    takes_s: float = 0.0
    tries: int = 0

    async def __call__(self) -> str:
        self.tries += 1
        self.clock.advance(self.takes_s)
        if self.failures:
            raise self.failures.pop(0)
        return self.answer


@dataclass
class Harness:
    clock: FakeClock
    sleeps: Sleeps
    link: RedisLink

    def redis(self, *failures: BaseException, takes_s: float = 0.0) -> FlakyRedis:
        return FlakyRedis(self.clock, list(failures), takes_s=takes_s)


@pytest.fixture
def harness() -> Harness:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    link = RedisLink("memory_queue", monotonic=clock.monotonic, wall=clock.now, sleep=sleeps)
    return Harness(clock, sleeps, link)


@pytest.fixture
def logs() -> Iterator[list[dict[str, object]]]:
    with capture_logs() as captured:
        yield captured


async def test_a_blip_on_the_request_path_is_retried_and_unnoticed(
    harness: Harness, logs: list[dict[str, object]]
) -> None:
    redis = harness.redis(REFUSED, REFUSED)
    assert await harness.link.run("queue a turn", redis, REQUEST_PATH) == "OK"
    assert redis.tries == 3
    assert harness.link.up
    assert logs == [], "a blip that a retry absorbed is no change of state"
    # ... but the adapters can tell: what Redis delivered meanwhile may need a recovery.
    assert (harness.link.interruptions, harness.link.outages) == (2, 0)


async def test_request_path_waits_stay_within_tens_of_milliseconds(harness: Harness) -> None:
    redis = harness.redis(*[REFUSED] * 10)
    with pytest.raises(MemoryUnavailable, match="Redis could not queue a turn: ConnectionError"):
        await harness.link.run("queue a turn", redis, REQUEST_PATH)
    assert redis.tries == REQUEST_PATH.attempts
    assert sum(harness.sleeps.waits) <= REQUEST_PATH.deadline_s
    assert harness.clock.monotonic() <= REQUEST_PATH.deadline_s


async def test_background_waits_grow_exponentially_up_to_the_cap_and_the_deadline(
    harness: Harness,
) -> None:
    policy = RetryPolicy(attempts=50, first_wait_s=0.1, max_wait_s=1.0, deadline_s=4.0)
    redis = harness.redis(*[REFUSED] * 50)
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("take turns", redis, policy)
    waits = harness.sleeps.waits
    # 0.1, 0.2, 0.4, 0.8 (each plus up to 0.1 of jitter), then the cap.
    for n, wait in enumerate(waits[:4]):
        assert 0.1 * 2**n <= wait <= 0.1 * 2**n + 0.1
    assert all(wait <= 1.0 for wait in waits)
    assert sum(waits) <= policy.deadline_s
    assert sum(waits) > policy.deadline_s - policy.max_wait_s, "it used its time"
    assert redis.tries == len(waits) + 1


async def test_the_deadline_counts_the_tries_themselves(harness: Harness) -> None:
    """A try that takes long (a connect timeout) leaves no time to retry on the
    request path: one slow failure, not three."""
    redis = harness.redis(*[REFUSED] * 3, takes_s=0.06)
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("queue a turn", redis, REQUEST_PATH)
    assert redis.tries == 1
    assert harness.sleeps.waits == []


async def test_the_background_policy_rides_out_a_restart(harness: Harness) -> None:
    redis = harness.redis(*[REFUSED] * 4, BusyLoadingError("Redis is loading the dataset"))
    assert await harness.link.run("take turns", redis, BACKGROUND) == "OK"
    assert redis.tries == 6
    assert sum(harness.sleeps.waits) <= BACKGROUND.deadline_s


@pytest.mark.parametrize(
    "error",
    [
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        AuthenticationError("invalid username-password pair or user is disabled."),
    ],
    ids=["answered-with-an-error", "authentication"],
)
async def test_what_would_fail_again_is_not_retried(harness: Harness, error: BaseException) -> None:
    redis = harness.redis(error)
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("take turns", redis, BACKGROUND)
    assert redis.tries == 1
    assert harness.sleeps.waits == []


async def test_a_timeout_is_retried_only_where_nobody_waits(harness: Harness) -> None:
    timeout = RedisTimeoutError("Timeout reading from socket")
    on_request_path = harness.redis(timeout)
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("queue a turn", on_request_path, REQUEST_PATH)
    assert on_request_path.tries == 1
    assert not harness.link.up, "no answer: Redis is down"
    in_background = harness.redis(timeout, TimeoutError())
    assert await harness.link.run("take turns", in_background, BACKGROUND) == "OK"
    assert in_background.tries == 3


async def test_while_down_the_request_path_tries_once(harness: Harness) -> None:
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("queue a turn", harness.redis(*[REFUSED] * 3), REQUEST_PATH)
    harness.sleeps.waits.clear()
    redis = harness.redis(*[REFUSED] * 3)
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("queue a turn", redis, REQUEST_PATH)
    assert redis.tries == 1, "an outage costs a request one refused connection"
    assert harness.sleeps.waits == []
    background = harness.redis(REFUSED, REFUSED)
    assert await harness.link.run("take turns", background, BACKGROUND) == "OK"
    assert background.tries == 3, "the writer keeps retrying, and brings the link back"
    assert harness.link.up


async def test_each_change_of_state_is_logged_once(
    harness: Harness, logs: list[dict[str, object]]
) -> None:
    link = harness.link
    for _ in range(3):
        with pytest.raises(MemoryUnavailable):
            await link.run("take turns", harness.redis(*[REFUSED] * 20), BACKGROUND)
    assert not link.up
    assert link.outages == 1
    harness.clock.advance(10)
    assert await link.run("take turns", harness.redis(), BACKGROUND) == "OK"
    await link.run("take turns", harness.redis(), BACKGROUND)
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("redis_down", "warning"),
        ("redis_up", "info"),
    ]
    assert logs[0]["component"] == "memory_queue"
    assert str(logs[0]["reason"]).startswith("ConnectionError: Error 111")
    assert float(logs[1]["down_for_s"]) >= 10  # type: ignore[arg-type]
    with pytest.raises(MemoryUnavailable):
        await link.run("queue a turn", harness.redis(*[REFUSED] * 3), REQUEST_PATH)
    assert link.outages == 2
    assert [e["event"] for e in logs][-1] == "redis_down"


async def test_an_error_answer_means_redis_is_up(harness: Harness) -> None:
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("take turns", harness.redis(*[REFUSED] * 3), REQUEST_PATH)
    assert not harness.link.up
    nogroup = ResponseError("NOGROUP No such key 'x' or consumer group 'y'")
    with pytest.raises(MemoryUnavailable):
        await harness.link.run("take turns", harness.redis(nogroup), REQUEST_PATH)
    assert harness.link.up


async def test_health_says_since_when_and_why(harness: Harness) -> None:
    down = await harness.link.check("redis", harness.redis(*[REFUSED] * 3))
    assert down.status is Status.UNHEALTHY
    assert down.detail is not None
    assert down.detail.startswith("unreachable since 2023-11-14T22:13:20Z: ConnectionError")
    assert "Connection refused" in down.detail
    up = await harness.link.check("redis", harness.redis())
    assert (up.status, up.detail) == (Status.HEALTHY, None)


async def test_no_reason_carries_credentials(
    harness: Harness, logs: list[dict[str, object]]
) -> None:
    leaky = RedisConnectionError(
        "cannot reach redis://:s3cret@cache.internal:6379/0 or rediss://u:p@h"
    )
    assert "s3cret" not in reason(leaky)
    assert reason(leaky).endswith("redis://***@cache.internal:6379/0 or rediss://***@h")
    with pytest.raises(MemoryUnavailable) as raised:
        await harness.link.run("queue a turn", harness.redis(*[leaky] * 3), REQUEST_PATH)
    health = await harness.link.check("redis", harness.redis(leaky))
    for text in (raised.value.message, str(logs), health.detail):
        assert "s3cret" not in str(text)

"""Redis commands under a bounded retry policy (tenacity), and whether Redis is up.

Only failures to reach Redis are retried: a refused or dropped connection, Redis still
loading its data, and a timeout only where running a command twice is harmless and
nobody waits. A command that Redis answered with an error would fail the same way again.
The request path retries for tens of milliseconds at most (a stale pooled connection
after a restart), and not at all while Redis is known to be down; the background writer
for a few seconds. Then the caller gets ``MemoryUnavailable`` and the link stays down
until a command gets through. Each change of state is logged once, not each retry, and
no reason carries credentials."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    MaxConnectionsError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from domain.errors import MemoryUnavailable
from domain.health import ServiceHealth, Status

log = structlog.get_logger("gateway.redis")
T = TypeVar("T")
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` tries; the waits start at ``first_wait_s`` and double (plus
    up to ``first_wait_s`` of jitter) up to ``max_wait_s``; no retry would start later than
    ``deadline_s`` after the first try began. ``retry_timeouts``: retry a command that
    timed out (it may have run). ``retry_while_down``: retry even while Redis is known
    to be down; otherwise one try, so that an outage costs a request nothing."""

    attempts: int
    first_wait_s: float
    max_wait_s: float
    deadline_s: float
    retry_timeouts: bool = False
    retry_while_down: bool = False


# What a chat request waits for: tens of milliseconds, for a blip, not an outage.
REQUEST_PATH = RetryPolicy(attempts=3, first_wait_s=0.005, max_wait_s=0.02, deadline_s=0.05)
# The writer and its consumer group: nobody waits, so ride out a restart of Redis.
BACKGROUND = RetryPolicy(
    attempts=10,
    first_wait_s=0.05,
    max_wait_s=2.0,
    deadline_s=5.0,
    retry_timeouts=True,
    retry_while_down=True,
)


def unreachable(exc: BaseException) -> bool:
    """Redis could not be reached or did not answer (the link is down)."""
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


def worth_retrying(exc: BaseException, policy: RetryPolicy) -> bool:
    if isinstance(exc, AuthenticationError | AuthorizationError | MaxConnectionsError):
        return False  # the same answer every time: a matter of configuration
    if isinstance(exc, RedisTimeoutError | TimeoutError):  # TimeoutError is an OSError
        return policy.retry_timeouts
    return unreachable(exc)


def reason(exc: BaseException) -> str:
    """The error's type and message, any ``scheme://user:password@`` left out."""
    return _USERINFO.sub("***@", f"{type(exc).__name__}: {exc}")


class RedisLink:
    """One adapter's view of Redis (``component`` names it in logs): runs each command
    under a ``RetryPolicy`` and keeps whether Redis is up, since when it is not and why.
    ``interruptions`` counts the tries that could not reach Redis (retried or not), so
    that an adapter can tell that a recovery is due; ``outages`` the times it went down.
    ``monotonic``, ``wall`` and ``sleep`` are the real ones outside tests."""

    def __init__(
        self,
        component: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.component = component
        self.interruptions = 0
        self.outages = 0
        self.reason: str | None = None
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self._down_since: float | None = None
        self._down_at = 0.0

    @property
    def up(self) -> bool:
        return self._down_since is None

    def describe(self) -> str | None:
        """Why Redis is down and since when; None while it is up."""
        if self.up:
            return None
        since = datetime.fromtimestamp(self._down_at, UTC).isoformat(timespec="seconds")
        return f"unreachable since {since.replace('+00:00', 'Z')}: {self.reason}"

    async def run(self, action: str, command: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
        """``command``'s result; ``MemoryUnavailable`` ("Redis could not {action}: …")
        once the policy gives up or Redis answers with an error."""
        started = self._monotonic()
        try:
            try:
                # Most calls succeed at once: they pay nothing for the retry machinery
                # (tenacity costs tens of microseconds a call).
                result = await self._attempt(command)
            except (RedisError, OSError) as exc:
                if not (worth_retrying(exc, policy) and (self.up or policy.retry_while_down)):
                    raise
                result = await self._retried(command, policy, started, exc)
        except (RedisError, OSError) as exc:
            if unreachable(exc):
                self._went_down(exc)
            elif isinstance(exc, ResponseError):
                self._came_up()  # it answered
            raise MemoryUnavailable(f"Redis could not {action}: {reason(exc)}") from exc
        self._came_up()
        return result

    async def _attempt(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except (RedisError, OSError) as exc:
            if unreachable(exc):
                self.interruptions += 1
            raise

    async def _retried(
        self,
        command: Callable[[], Awaitable[T]],
        policy: RetryPolicy,
        started: float,
        first_failure: BaseException,
    ) -> T:
        """The tries after the first, which failed with ``first_failure``: tenacity is
        handed that failure as its own first try, so that it counts and waits from it."""
        replayed = [first_failure]

        async def attempt() -> T:
            if replayed:
                raise replayed.pop()
            return await self._attempt(command)

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=self._stop(policy, started),
            wait=wait_exponential_jitter(
                multiplier=policy.first_wait_s, max=policy.max_wait_s, jitter=policy.first_wait_s
            ),
            retry=retry_if_exception(lambda exc: worth_retrying(exc, policy)),
            reraise=True,
        )
        result: T = await retrying(attempt)
        return result

    async def check(self, name: str, ping: Callable[[], Awaitable[Any]]) -> ServiceHealth:
        """The health that ``/health`` shows: a ping under the request path's policy."""
        started = self._monotonic()
        try:
            await self.run("answer a ping", ping, REQUEST_PATH)
        except MemoryUnavailable as exc:
            detail = self.describe() or exc.message
            return ServiceHealth(name, Status.UNHEALTHY, self._ms_since(started), detail)
        return ServiceHealth(name, Status.HEALTHY, self._ms_since(started))

    def _stop(self, policy: RetryPolicy, started: float) -> Callable[[RetryCallState], bool]:
        def stop(state: RetryCallState) -> bool:
            spent = self._monotonic() - started
            upcoming = state.upcoming_sleep
            return state.attempt_number >= policy.attempts or spent + upcoming > policy.deadline_s

        return stop

    def _went_down(self, exc: BaseException) -> None:
        self.reason = reason(exc)
        if self._down_since is not None:
            return
        self._down_since = self._monotonic()
        self._down_at = self._wall()
        self.outages += 1
        log.warning("redis_down", component=self.component, reason=self.reason)

    def _came_up(self) -> None:
        if self._down_since is None:
            return
        down_for = self._monotonic() - self._down_since
        self._down_since = None
        self.reason = None
        log.info("redis_up", component=self.component, down_for_s=round(down_for, 3))

    def _ms_since(self, started: float) -> float:
        return round((self._monotonic() - started) * 1000, 2)

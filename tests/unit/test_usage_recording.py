"""Where a key's usage history is counted: once per admitted request, a generation with
its real usage once settled; nothing for a refused request; a history that is down costs
the request nothing. Against fakes that behave."""

from __future__ import annotations

import pytest

from application.access import AdmissionControl, GenerationAsk, KeyManagement, TierPolicy
from domain.errors import NotFound, RateLimited
from domain.keys import KeyRing
from domain.limits import KeyPolicy, RateLimit
from domain.principal import Principal, Tier
from domain.usage import UsageWindow
from tests.fakes.fake_clock import FakeClock
from tests.fakes.fake_key_store import FakeKeyStore
from tests.fakes.fake_rate_limiter import FakeRateLimiter
from tests.fakes.fake_usage_history import FakeUsageHistory

KEY = Principal("key_u", Tier.STANDARD)
TIERS = {t: TierPolicy(RateLimit(2, 1_000_000), max_tokens_cap=64) for t in Tier}


class ListAudit:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def record(self, action: str, actor: str, target: str, **fields: object) -> None:
        self.lines.append((action, actor, target))


def control() -> tuple[AdmissionControl, FakeUsageHistory, FakeClock]:
    history, clock = FakeUsageHistory(), FakeClock()
    admission = AdmissionControl(FakeRateLimiter(), FakeKeyStore(), clock, TIERS, usage=history)
    return admission, history, clock


async def test_a_request_counts_once_with_its_tokens() -> None:
    admission, history, clock = control()
    await admission.admit(KEY)
    await admission.admit(KEY, 12)  # an embedding's estimate
    assert history.records == [("key_u", 1, 0, clock.now()), ("key_u", 1, 12, clock.now())]


async def test_a_generation_counts_once_with_its_real_usage() -> None:
    admission, history, clock = control()
    async with admission.generation(KEY, GenerationAsk(["hello"])) as grant:
        assert history.records == []  # not before it is settled
        grant.record(7)
    assert history.records == [("key_u", 1, 7, clock.now())]
    async with admission.generation(KEY, GenerationAsk(["hello"])) as grant:
        settle = grant.hand_over()
    clock.advance(90)
    await settle(3)  # a stream ending later: counted when (and with what) it ended
    assert history.records[-1] == ("key_u", 1, 3, clock.now())


async def test_a_refused_request_does_not_count() -> None:
    admission, history, _ = control()
    await admission.admit(KEY)
    await admission.admit(KEY)
    with pytest.raises(RateLimited):
        await admission.admit(KEY)  # two a minute
    with pytest.raises(RateLimited):
        async with admission.generation(KEY, GenerationAsk(["hello"])):
            pytest.fail("admitted")
    assert len(history.records) == 2


async def test_a_history_that_is_down_costs_the_request_nothing() -> None:
    admission, history, _ = control()
    history.down = True
    assert await admission.admit(KEY) is not None
    async with admission.generation(KEY, GenerationAsk(["hello"])) as grant:
        grant.record(5)


async def test_key_management_reads_a_known_keys_series() -> None:
    store, history, clock = FakeKeyStore(), FakeUsageHistory(), FakeClock()
    keys = KeyManagement(KeyRing([]), store, clock, ListAudit(), usage=history)
    admin = Principal("key_admin", Tier.ADMIN)
    key, _ = await keys.create(admin, "robot", Tier.STANDARD, None, KeyPolicy())
    await history.record(key.id, 1, 9, clock.now())
    series = await keys.usage_series(key.id, UsageWindow.HOUR)
    assert (series.requests, series.tokens, len(series.buckets)) == (1, 9, 60)
    with pytest.raises(NotFound):
        await keys.usage_series("key_missing", UsageWindow.DAY)
    without = KeyManagement(KeyRing([]), store, clock, ListAudit())
    assert (await without.usage_series(key.id, UsageWindow.DAY)).tokens == 0

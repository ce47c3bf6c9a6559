"""AdmissionControl.generation against fakes that behave: the bound it decides, what it
reserves, and how it settles (normal end, refusal, timeout, hand-over to a stream)."""

from __future__ import annotations

import asyncio

import pytest

from application.access import AdmissionControl, GenerationAsk, KeyQuotaExceeded, TierPolicy
from domain.errors import InvalidRequest, RateLimited, UpstreamTimeout, UpstreamUnavailable
from domain.limits import KeyPolicy, QuotaPeriod, RateLimit, period_start
from domain.principal import Principal, Tier
from tests.fakes.fake_clock import FakeClock
from tests.fakes.fake_key_store import FakeKeyStore
from tests.fakes.fake_rate_limiter import FakeRateLimiter

TIERS = {
    Tier.STANDARD: TierPolicy(RateLimit(1000, 1_000_000), max_tokens_cap=4096, max_n=4),
    Tier.DEVELOPER: TierPolicy(RateLimit(1000, 1_000_000), max_tokens_cap=8192, max_n=8),
    Tier.ADMIN: TierPolicy(RateLimit(1000, 1_000_000), max_tokens_cap=32768, max_n=16),
}
QUOTA_KEY = Principal(
    "key_q", Tier.STANDARD,
    policy=KeyPolicy(max_tokens_cap=5, token_quota=100, quota_period=QuotaPeriod.DAY),
)  # fmt: skip
HELLO = ["hello"]  # 5 characters: a prompt estimate of 1 token, at most 5 + 8 × 2
ESTIMATE, WORST = 1 + 5, 21 + 5  # with max_tokens 5


def control() -> tuple[AdmissionControl, FakeKeyStore, FakeRateLimiter, FakeClock]:
    keys, limiter, clock = FakeKeyStore(), FakeRateLimiter(), FakeClock()
    return AdmissionControl(limiter, keys, clock, TIERS), keys, limiter, clock


def used(keys: FakeKeyStore, clock: FakeClock) -> int:
    return keys.usage_by_period.get(("key_q", period_start(QuotaPeriod.DAY, clock.now())), 0)


async def test_the_bound_is_the_cap_when_absent_and_the_smaller_when_both() -> None:
    admission, *_ = control()
    async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)) as grant:
        assert (grant.max_tokens, grant.token_field) == (5, "max_tokens")
        assert (grant.estimate, grant.reserved) == (ESTIMATE, WORST)
    both = GenerationAsk(HELLO, max_tokens=4, max_completion_tokens=2, n=3)
    async with admission.generation(QUOTA_KEY, both) as grant:
        assert (grant.max_tokens, grant.token_field) == (2, "max_completion_tokens")
        assert (grant.estimate, grant.reserved) == (1 + 2 * 3, 21 + 2 * 3)


@pytest.mark.parametrize(
    ("ask", "param"),
    [
        (GenerationAsk(HELLO, max_completion_tokens=6), "max_completion_tokens"),
        (GenerationAsk(HELLO, max_tokens=6, max_completion_tokens=1), "max_tokens"),
        (GenerationAsk(HELLO, n=5), "n"),
    ],
)
async def test_over_a_cap_is_refused_naming_the_field(ask: GenerationAsk, param: str) -> None:
    admission, keys, _, clock = control()
    with pytest.raises(InvalidRequest) as refused:
        async with admission.generation(QUOTA_KEY, ask):
            pytest.fail("admitted")
    assert refused.value.param == param
    assert used(keys, clock) == 0


async def test_settled_with_the_real_usage() -> None:
    admission, keys, limiter, clock = control()
    async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)) as grant:
        assert used(keys, clock) == WORST  # reserved while it runs
        grant.record(4)
    assert used(keys, clock) == 4
    assert limiter.reconciled == [("key_q", 4 - ESTIMATE)]


async def test_an_upstream_refusal_costs_nothing_a_timeout_the_reservation() -> None:
    admission, keys, _, clock = control()
    with pytest.raises(UpstreamUnavailable):
        async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)):
            raise UpstreamUnavailable("down")
    assert used(keys, clock) == 0
    with pytest.raises(UpstreamTimeout):
        async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)):
            raise UpstreamTimeout("slow")
    assert used(keys, clock) == ESTIMATE  # the usage is unknown: the estimate counts


async def test_a_handed_over_generation_is_settled_by_its_stream() -> None:
    admission, keys, _, clock = control()
    async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)) as grant:
        settle = grant.hand_over()
    assert used(keys, clock) == WORST  # the stream runs on
    await settle(3)
    await settle(5)  # once only
    assert used(keys, clock) == 3


async def test_parallel_generations_never_reserve_beyond_the_quota() -> None:
    admission, keys, _, clock = control()
    gate = asyncio.Event()

    refusals: list[KeyQuotaExceeded] = []

    async def one() -> bool:
        try:
            async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)) as grant:
                await gate.wait()
                grant.record(ESTIMATE)
        except KeyQuotaExceeded as exc:
            refusals.append(exc)
            return False
        return True

    tasks = [asyncio.ensure_future(one()) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    admitted = sum(await asyncio.gather(*tasks))
    assert admitted == 100 // WORST
    assert {r.quota.quota for r in refusals} == {100}
    assert used(keys, clock) == ESTIMATE * admitted <= 100


async def test_a_rate_limit_refusal_gives_the_quota_reservation_back() -> None:
    admission, keys, limiter, clock = control()
    tight = dict(TIERS)
    tight[Tier.STANDARD] = TierPolicy(RateLimit(1, 1_000_000), max_tokens_cap=4096)
    admission = AdmissionControl(limiter, keys, clock, tight)
    async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)):
        pass
    with pytest.raises(RateLimited) as refused:
        async with admission.generation(QUOTA_KEY, GenerationAsk(HELLO)):
            pytest.fail("admitted")
    assert used(keys, clock) == ESTIMATE  # the first one's, the second's given back
    seconds = refused.value.admission.retry_after_whole_s  # type: ignore[attr-defined]
    assert f"retry after {seconds} s" in refused.value.message

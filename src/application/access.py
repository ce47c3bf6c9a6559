"""Who may call, how much: managed keys (with authentication) and admission control
(rate limits, per-key policy, token quotas)."""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from domain.errors import (
    BackendUnavailable,
    GatewayError,
    InvalidRequest,
    ModelNotAllowed,
    NotFound,
    QuotaExceeded,
    RateLimited,
    UpstreamTimeout,
)
from domain.keys import KeyRing, hash_key, key_id_for
from domain.limits import (
    Admission,
    KeyPolicy,
    ManagedKey,
    QuotaReservation,
    RateLimit,
    duration,
    period_end,
    period_start,
)
from domain.principal import DEFAULT_TENANT, Principal, Tier, reserved_tenant
from domain.usage import UsageSeries, UsageWindow, series_from
from ports.audit import AuditLog
from ports.clock import Clock
from ports.key_store import KeyStore
from ports.rate_limiter import RateLimiter
from ports.usage_history import UsageHistory

log = logging.getLogger("gateway.access")
SECRET_PREFIX = "sk-gw-"
SECRET_BYTES = 32
# The length of every secret ``create`` makes (its prefix, then 32 bytes in base64url).
SECRET_LENGTH = len(SECRET_PREFIX) + math.ceil(SECRET_BYTES * 4 / 3)  # base64, no padding


def could_be_managed(secret: str) -> bool:
    """Whether ``secret`` has the shape of a managed key's (only those are looked up:
    any other unknown secret is refused without asking the store, even when it is
    down)."""
    return secret.startswith(SECRET_PREFIX) and len(secret) == SECRET_LENGTH


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on a conversation, beyond the body size the HTTP edge enforces."""

    max_messages: int = 512
    max_content_chars: int = 400_000


@dataclass(frozen=True, slots=True)
class TierPolicy:
    rate_limit: RateLimit
    max_tokens_cap: int | None = None
    max_n: int = 4  # most choices (``n``) in one request


class KeyManagement:
    """Keys from ``API_KEYS`` (a KeyRing) and managed keys (a KeyStore, by hash).
    A lookup is cached for ``cache_ttl_s``, so a revocation is effective on every
    instance within that time (at once on the instance that revoked)."""

    def __init__(
        self,
        keyring: KeyRing,
        store: KeyStore,
        clock: Clock,
        audit: AuditLog,
        *,
        cache_ttl_s: float = 1.0,
        touch_every_s: float = 60.0,
        usage: UsageHistory | None = None,
    ) -> None:
        self._keyring = keyring
        self._store = store
        self._clock = clock
        self._audit = audit
        self._usage = usage
        self._ttl = cache_ttl_s
        self._touch_every = touch_every_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, secret: str) -> Principal | None:
        principal = self._keyring.lookup(secret)
        if principal is not None or not could_be_managed(secret):
            return principal
        digest = hash_key(secret)
        now = self._clock.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            key = await self._store.find_by_hash(digest)
            principal = None
            if key is not None and key.revoked_at is None:
                principal = Principal(key.id, Tier.parse(key.tier), key.tenant, key.policy)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        if (
            principal is not None
            and now - self._touched.get(principal.key_id, -1e18) > self._touch_every
        ):
            self._touched[principal.key_id] = now
            try:
                await self._store.touch(principal.key_id, self._clock.now())
            except BackendUnavailable as exc:
                log.warning("could not record key use: %s", exc.message)
        return principal

    async def create(
        self, actor: Principal, name: str, tier: Tier, tenant: str | None, policy: KeyPolicy
    ) -> tuple[ManagedKey, str]:
        """The new key and its secret: shown once, stored only as a hash."""
        if not name.strip():
            raise InvalidRequest("a key needs a name", param="name")
        if tenant is not None and (reason := reserved_tenant(tenant)) is not None:
            raise InvalidRequest(reason, param="tenant")
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        digest = hash_key(secret)
        key = ManagedKey(
            id=key_id_for(digest),
            name=name,
            key_hash=digest,
            tier=tier.label,
            tenant=tenant or DEFAULT_TENANT,
            created_at=self._clock.now(),
            policy=policy,
        )
        await self._store.create(key)
        self._audit.record("key.created", actor.key_id, key.id, tier=key.tier, tenant=key.tenant)
        return key, secret

    async def list_keys(self) -> list[ManagedKey]:
        return await self._store.list_keys()

    async def get(self, key_id: str) -> tuple[ManagedKey, int, str]:
        """The key, the tokens it used in its current quota period, and that period."""
        key = await self._store.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id!r}", param="key_id")
        period = period_start(key.policy.quota_period, self._clock.now())
        return key, await self._store.usage(key_id, period), period

    async def usage_series(self, key_id: str, window: UsageWindow) -> UsageSeries:
        """The key's requests and tokens over ``window`` (404 for an unknown key; all
        zeros when no history is kept)."""
        if await self._store.get(key_id) is None:
            raise NotFound(f"no key {key_id!r}", param="key_id")
        now = self._clock.now()
        if self._usage is None:
            return series_from(key_id, window, now, {})
        return await self._usage.series(key_id, window, now)

    async def revoke(self, actor: Principal, key_id: str) -> None:
        if not await self._store.revoke(key_id, self._clock.now()):
            raise NotFound(f"no active key {key_id!r}", param="key_id")
        # This instance refuses it at once; the others when their cache entry expires.
        prefix = key_id.removeprefix("key_")
        for digest in [d for d in self._cache if d.startswith(prefix)]:
            del self._cache[digest]
        self._audit.record("key.revoked", actor.key_id, key_id)


class KeyQuotaExceeded(QuotaExceeded):
    """The key's token quota cannot hold this request until its period ends: retrying
    sooner is pointless (the HTTP edge says so: ``x-should-retry: false``)."""

    def __init__(self, message: str, quota: QuotaReservation) -> None:
        super().__init__(message)
        self.quota = quota


@dataclass(frozen=True, slots=True)
class GenerationAsk:
    """What a generating request asks for, as admission sees it. ``default_max_tokens``:
    the route's own bound when the client names none (the seed's 2048 on /v1/chat)."""

    contents: Sequence[str]
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    default_max_tokens: int | None = None


class Generation:
    """An admitted generation: the completion bound the upstream must be told
    (``max_tokens`` under the name ``token_field``; None: no bound applies), the tokens
    taken from the per-minute bucket (``estimate``) and from the key's quota
    (``reserved``, the worst case). Settled once with the real usage (the estimate when
    the upstream did not report it): when the ``async with``
    block of ``AdmissionControl.generation`` ends, or, once ``hand_over()`` was called
    (a stream outliving the block), by the callable it returned."""

    def __init__(
        self,
        control: AdmissionControl,
        principal: Principal,
        max_tokens: int | None,
        token_field: str,
        estimate: int,
        reserved: int,
        admission: Admission | None,
        quota_period: str | None,
    ) -> None:
        self.max_tokens = max_tokens
        self.token_field = token_field
        self.estimate = estimate
        self.reserved = reserved
        self.admission = admission
        self._control = control
        self._principal = principal
        self._quota_period = quota_period
        self._usage: int | None = None
        self._settled = False
        self.handed_over = False

    def record(self, total_tokens: int | None) -> None:
        """The usage the upstream reported (None: unknown, the estimate counts)."""
        self._usage = total_tokens

    def hand_over(self) -> Callable[[int | None], Awaitable[None]]:
        """The block ends before the generation does (a stream): whoever ends it settles."""
        self.handed_over = True
        return self.settle

    async def settle(self, total_tokens: int | None = None) -> None:
        if self._settled:
            return
        self._settled = True
        used = self.estimate if total_tokens is None else total_tokens
        await self._control.settle_generation(
            self._principal, self, used, self.admission is not None, self._quota_period
        )

    async def _end(self, error: BaseException | None) -> None:
        if self.handed_over:
            return
        if error is None:
            await self.settle(self._usage)
        elif isinstance(error, GatewayError) and not isinstance(error, UpstreamTimeout):
            await self.settle(0)  # refused before anything was generated: nothing spent
        else:
            await self.settle(self._usage)  # a disconnect or a timeout: what it may have cost


class AdmissionControl:
    """Admits a request for a key: its model, max_tokens and n under the key's policy
    and tier, its token quota and per-minute limits. A generating request reserves its
    worst case from the key's quota (an upper bound of the prompt's tokens + max_tokens
    × n, atomically, in the key store) and its estimate (4 characters a token) from the
    token bucket before it is admitted, and settles with the real usage after; so
    concurrent requests never spend more than the quota, beyond what a request's real
    usage exceeds its worst case (only the prompt's non-text parts can: tools, images;
    the upstream is told the completion bound). When the limiter's store is down,
    requests are admitted (and it is logged): availability first; a quota's store must
    answer."""

    def __init__(
        self,
        limiter: RateLimiter,
        keys: KeyStore,
        clock: Clock,
        tiers: Mapping[Tier, TierPolicy],
        limits: RequestLimits | None = None,
        *,
        usage: UsageHistory | None = None,
    ) -> None:
        self._limiter = limiter
        self._keys = keys
        self._clock = clock
        self._tiers = tiers
        self._limits = limits or RequestLimits()
        self._usage = usage

    def check_conversation(self, contents: Sequence[str]) -> None:
        """At most ``max_messages`` messages, each at most ``max_content_chars``."""
        if len(contents) > self._limits.max_messages:
            raise InvalidRequest(
                f"{len(contents)} messages; at most {self._limits.max_messages} are accepted",
                param="messages",
            )
        for number, content in enumerate(contents):
            if len(content) > self._limits.max_content_chars:
                raise InvalidRequest(
                    f"message {number} has {len(content)} characters; at most "
                    f"{self._limits.max_content_chars} are accepted",
                    param=f"messages[{number}].content",
                )

    def max_tokens_cap(self, principal: Principal) -> int | None:
        caps = [self._tiers[principal.tier].max_tokens_cap]
        if principal.policy is not None:
            caps.append(principal.policy.max_tokens_cap)
        present = [c for c in caps if c is not None]
        return min(present) if present else None

    def bound(self, principal: Principal, ask: GenerationAsk) -> tuple[int | None, str]:
        """The completion bound to send upstream and the field to send it as, or a 400
        naming the field over the key's cap (or ``n`` over the tier's)."""
        policy = principal.policy
        if policy is not None and policy.allowed_models is not None:
            if ask.model is None:
                raise ModelNotAllowed("this key must name one of its allowed models", param="model")
            if ask.model not in policy.allowed_models:
                raise ModelNotAllowed(
                    f"this key may not use the model `{ask.model}`", param="model"
                )
        cap = self.max_tokens_cap(principal)
        asked = {"max_tokens": ask.max_tokens, "max_completion_tokens": ask.max_completion_tokens}
        for name, value in asked.items():
            if cap is not None and value is not None and value > cap:
                raise InvalidRequest(
                    f"{name} is {value}; this key may ask for at most {cap}", param=name
                )
        tier = self._tiers[principal.tier]
        if ask.n is not None and ask.n > tier.max_n:
            raise InvalidRequest(
                f"n is {ask.n}; this key's tier ({principal.tier.label}) may ask for at most "
                f"{tier.max_n} choices",
                param="n",
            )
        given = [v for v in asked.values() if v is not None]
        # Both given: the smaller holds, sent as OpenAI's current name (one field only).
        field = "max_completion_tokens" if ask.max_completion_tokens is not None else "max_tokens"
        if given:
            return min(given), field
        if ask.default_max_tokens is not None:
            return min(ask.default_max_tokens, cap or ask.default_max_tokens), field
        return cap, field

    @asynccontextmanager
    async def generation(
        self, principal: Principal, ask: GenerationAsk
    ) -> AsyncIterator[Generation]:
        """Check, cap and reserve on entry (or raise: 400, 403, 429); settle on exit, an
        error or a client disconnect included (see ``Generation``)."""
        max_tokens, field = self.bound(principal, ask)
        self.check_conversation(ask.contents)
        completion = (max_tokens or DEFAULT_MAX_TOKENS) * (ask.n or 1)
        estimate = prompt_estimate(ask.contents) + completion
        reserved = estimate
        if principal.policy is not None and principal.policy.token_quota is not None:
            reserved = prompt_bound(ask.contents) + completion
        quota = await self._reserve_quota(principal, reserved)
        try:
            admission = await self._admit(principal, estimate)  # counted when settled
        except BaseException:
            if quota is not None:
                await self._give_back(principal, quota[0], reserved)
            raise
        if admission is not None and quota is not None:
            admission = with_quota(admission, quota[1])
        grant = Generation(
            self, principal, max_tokens, field, estimate, reserved, admission,
            quota[0] if quota is not None else None,
        )  # fmt: skip
        try:
            yield grant
        except BaseException as exc:
            await grant._end(exc)
            raise
        await grant._end(None)

    async def _reserve_quota(
        self, principal: Principal, tokens: int
    ) -> tuple[str, QuotaReservation] | None:
        policy = principal.policy
        if policy is None or policy.token_quota is None:
            return None
        now = self._clock.now()
        period = period_start(policy.quota_period, now)
        done, used = await self._keys.reserve_usage(
            principal.key_id, period, tokens, policy.token_quota
        )
        state = QuotaReservation(
            done, used, policy.token_quota, period_end(policy.quota_period, now) - now
        )
        if not done:
            raise KeyQuotaExceeded(
                f"this key's token quota for the {policy.quota_period.value} is spent: "
                f"{used} of {policy.token_quota} tokens used, and this request may use up "
                f"to {tokens}; the quota renews in {duration(state.resets_in_s)}",
                state,
            )
        return period, state

    async def _give_back(self, principal: Principal, period: str, tokens: int) -> None:
        try:
            await self._keys.add_usage(principal.key_id, period, -tokens)
        except BackendUnavailable as exc:
            log.warning("could not give back a reservation: %s", exc.message)

    async def admit(self, principal: Principal, tokens: int = 0) -> Admission | None:
        """Take one request and ``tokens`` from the key's per-minute budgets, or raise
        ``RateLimited``. None when the limiter is unavailable. Once admitted, the request
        and its tokens count in the key's usage history."""
        admission = await self._admit(principal, tokens)
        await self._record_usage(principal, tokens)
        return admission

    async def _record_usage(self, principal: Principal, tokens: int) -> None:
        if self._usage is None:
            return
        try:
            await self._usage.record(principal.key_id, 1, tokens, self._clock.now())
        except BackendUnavailable as exc:
            log.warning("could not record usage history: %s", exc.message)

    async def _admit(self, principal: Principal, tokens: int) -> Admission | None:
        try:
            admission = await self._limiter.admit(
                principal.key_id, self._tiers[principal.tier].rate_limit, tokens, self._clock.now()
            )
        except BackendUnavailable as exc:
            log.warning("rate limiter unavailable, admitting: %s", exc.message)
            return None
        if not admission.allowed:
            raise RateLimited(
                f"rate limit reached for this key; retry after {admission.retry_after_whole_s} s "
                f"(its request budget is full again in {duration(admission.reset_requests_s)}, "
                f"its token budget in {duration(admission.reset_tokens_s)})",
                admission,
            )
        return admission

    async def settle_generation(
        self,
        principal: Principal,
        grant: Generation,
        used: int,
        limited: bool,
        quota_period: str | None,
    ) -> None:
        """The token bucket and the quota get the real usage instead of what was taken
        on admission; a managed key's usage in its period grows by it."""
        delta = used - grant.estimate
        try:
            if delta and limited:
                await self._limiter.reconcile(
                    principal.key_id,
                    self._tiers[principal.tier].rate_limit,
                    delta,
                    self._clock.now(),
                )
            if quota_period is not None:
                if used != grant.reserved:
                    await self._keys.add_usage(
                        principal.key_id, quota_period, used - grant.reserved
                    )
            elif principal.policy is not None:
                period = period_start(principal.policy.quota_period, self._clock.now())
                await self._keys.add_usage(principal.key_id, period, used)
        except BackendUnavailable as exc:
            log.warning("could not record usage: %s", exc.message)
        await self._record_usage(principal, used)


def with_quota(admission: Admission, quota: QuotaReservation) -> Admission:
    """The token headers of a key with a quota report that quota."""
    return replace(
        admission,
        limit_tokens=quota.quota,
        remaining_tokens=quota.remaining,
        reset_tokens_s=quota.resets_in_s,
    )


DEFAULT_MAX_TOKENS = 1024  # the reservation's completion bound when no cap applies


def prompt_estimate(texts: Sequence[str]) -> int:
    """Prompt tokens estimated: 4 characters a token."""
    return sum(len(t) for t in texts) // 4


MESSAGE_OVERHEAD_TOKENS = 8  # a chat template's role markers and separators, generously


def prompt_bound(texts: Sequence[str]) -> int:
    """At least the prompt's tokens: a token of a byte-level tokenizer covers at least one
    byte of text, plus the template's tokens around each message (and the reply's).
    What a token quota reserves, so that parallel requests cannot overspend it."""
    return sum(len(t.encode()) for t in texts) + MESSAGE_OVERHEAD_TOKENS * (len(texts) + 1)


def estimate_tokens(
    texts: Sequence[str], max_tokens: int | None, default_max: int = DEFAULT_MAX_TOKENS
) -> int:
    """Prompt tokens estimated (4 characters a token) plus the answer's bound."""
    return prompt_estimate(texts) + (max_tokens or default_max)

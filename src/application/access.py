"""Who may call, how much: managed keys (with authentication) and admission control
(rate limits, per-key policy, token quotas)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.errors import (
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
)
from domain.keys import KeyRing, hash_key, key_id_for
from domain.limits import Admission, KeyPolicy, ManagedKey, RateLimit, period_start
from domain.principal import DEFAULT_TENANT, Principal, Tier
from ports.audit import AuditLog
from ports.clock import Clock
from ports.key_store import KeyStore
from ports.rate_limiter import RateLimiter

log = logging.getLogger("gateway.access")
SECRET_PREFIX = "sk-gw-"


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on a conversation, beyond the body size the HTTP edge enforces."""

    max_messages: int = 512
    max_content_chars: int = 400_000


@dataclass(frozen=True, slots=True)
class TierPolicy:
    rate_limit: RateLimit
    max_tokens_cap: int | None = None


class KeyManagement:
    """Keys from ``API_KEYS`` (a KeyRing) and managed keys (a KeyStore, by hash).
    A lookup is cached for ``cache_ttl_s``, so a revocation is effective on every
    instance within that time."""

    def __init__(
        self,
        keyring: KeyRing,
        store: KeyStore,
        clock: Clock,
        audit: AuditLog,
        *,
        cache_ttl_s: float = 1.0,
        touch_every_s: float = 60.0,
    ) -> None:
        self._keyring = keyring
        self._store = store
        self._clock = clock
        self._audit = audit
        self._ttl = cache_ttl_s
        self._touch_every = touch_every_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, secret: str) -> Principal | None:
        principal = self._keyring.lookup(secret)
        if principal is not None:
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
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
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

    async def revoke(self, actor: Principal, key_id: str) -> None:
        if not await self._store.revoke(key_id, self._clock.now()):
            raise NotFound(f"no active key {key_id!r}", param="key_id")
        self._audit.record("key.revoked", actor.key_id, key_id)


class AdmissionControl:
    """Admits a request for a key: its model and max_tokens under the key's policy, its
    token quota not spent, and its per-minute limits (tier defaults). When the limiter's
    store is down, requests are admitted (and it is logged): availability first."""

    def __init__(
        self,
        limiter: RateLimiter,
        keys: KeyStore,
        clock: Clock,
        tiers: Mapping[Tier, TierPolicy],
        limits: RequestLimits | None = None,
    ) -> None:
        self._limiter = limiter
        self._keys = keys
        self._clock = clock
        self._tiers = tiers
        self._limits = limits or RequestLimits()

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

    def check_policy(self, principal: Principal, model: str | None, max_tokens: int | None) -> None:
        policy = principal.policy
        if policy is not None and policy.allowed_models is not None:
            if model is None:
                raise PermissionDenied("this key must name one of its allowed models")
            if model not in policy.allowed_models:
                raise PermissionDenied(f"this key may not use the model `{model}`")
        cap = self.max_tokens_cap(principal)
        if cap is not None and max_tokens is not None and max_tokens > cap:
            raise InvalidRequest(
                f"max_tokens is {max_tokens}; this key may ask for at most {cap}",
                param="max_tokens",
            )

    async def admit(self, principal: Principal, tokens: int = 0) -> Admission | None:
        """Take one request and ``tokens`` from the key's budgets, or raise
        ``RateLimited``/``QuotaExceeded``. None when the limiter is unavailable."""
        now = self._clock.now()
        policy = principal.policy
        if policy is not None and policy.token_quota is not None:
            period = period_start(policy.quota_period, now)
            used = await self._keys.usage(principal.key_id, period)
            if used + tokens > policy.token_quota:
                raise QuotaExceeded(
                    f"this key's token quota for the {policy.quota_period.value} is spent "
                    f"({used} of {policy.token_quota} tokens used)"
                )
        try:
            admission = await self._limiter.admit(
                principal.key_id, self._tiers[principal.tier].rate_limit, tokens, now
            )
        except BackendUnavailable as exc:
            log.warning("rate limiter unavailable, admitting: %s", exc.message)
            return None
        if not admission.allowed:
            raise RateLimited(
                f"rate limit reached for this key; retry in {admission.retry_after_s:.1f} s",
                admission,
            )
        return admission

    async def settle(self, principal: Principal, estimated: int, actual: int | None) -> None:
        """After the response: the token bucket gets the real usage, and a managed key's
        usage in its period grows by it."""
        used = estimated if actual is None else actual
        try:
            if used != estimated:
                await self._limiter.reconcile(
                    principal.key_id,
                    self._tiers[principal.tier].rate_limit,
                    used - estimated,
                    self._clock.now(),
                )
            if principal.policy is not None:
                period = period_start(principal.policy.quota_period, self._clock.now())
                await self._keys.add_usage(principal.key_id, period, used)
        except BackendUnavailable as exc:
            log.warning("could not record usage: %s", exc.message)


def estimate_tokens(texts: Sequence[str], max_tokens: int | None, default_max: int = 1024) -> int:
    """Prompt tokens estimated (4 characters a token) plus the answer's bound."""
    return sum(len(t) for t in texts) // 4 + (max_tokens or default_max)

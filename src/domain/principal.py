"""Who is calling: a key's identity, tenant and tier, and what each tier may do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from domain.limits import KeyPolicy


class Tier(IntEnum):
    """Tiers are ordered: each one may do everything the tiers below it may."""

    STANDARD = 1
    DEVELOPER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Tier:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            allowed = ", ".join(t.name.lower() for t in cls)
            raise ValueError(f"unknown tier {name!r} (expected one of: {allowed})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Capability(Enum):
    """What a route needs; the minimum tier for each lives here, in one place."""

    CHAT = Tier.STANDARD
    READ_MODELS = Tier.STANDARD
    READ_METRICS = Tier.STANDARD
    SEARCH_DOCUMENTS = Tier.STANDARD
    MANAGE_OWN_MEMORIES = Tier.STANDARD
    WRITE_DOCUMENTS = Tier.DEVELOPER
    WRITE_GLOBAL_DOCUMENTS = Tier.ADMIN
    MANAGE_KEYS = Tier.ADMIN

    @property
    def minimum_tier(self) -> Tier:
        return Tier(self.value)


DEFAULT_TENANT = "default"
# Tenant names the gateway uses itself: "*" owns the global documents, and its own
# callers ("gateway:warm-up") have a ":". No key may belong to such a tenant.
RESERVED_TENANT_CHARACTERS = ("*", ":")


def reserved_tenant(name: str) -> str | None:
    """Why ``name`` cannot be a key's tenant, or None when it can."""
    for character in RESERVED_TENANT_CHARACTERS:
        if character in name:
            return f"a tenant name may not contain {character!r} (reserved by the gateway)"
    if not name.strip():
        return "a tenant name may not be blank"
    return None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``key_id`` is safe to log; the secret is never kept."""

    key_id: str
    tier: Tier
    tenant: str = DEFAULT_TENANT
    # A managed key's own policy (None: the tier's defaults; keys from API_KEYS).
    policy: KeyPolicy | None = None

    def may(self, capability: Capability) -> bool:
        return self.tier >= capability.minimum_tier

    def may_use(self, model: str) -> bool:
        """A managed key with ``allowed_models`` may use those names only."""
        allowed = None if self.policy is None else self.policy.allowed_models
        return allowed is None or model in allowed

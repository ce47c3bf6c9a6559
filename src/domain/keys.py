"""API keys: parsed from configuration, known only by their hash."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.errors import ConfigurationError
from domain.principal import DEFAULT_TENANT, Principal, Tier, reserved_tenant

# Active only when no key is configured and the environment is not production.
DEVELOPMENT_KEYS: tuple[tuple[str, Tier], ...] = (
    ("sk-test-key-123", Tier.STANDARD),
    ("sk-admin-key-456", Tier.ADMIN),
    ("sk-dev-key-789", Tier.DEVELOPER),
)


# In production: a key at least this long, with at least this much character entropy
# (Shannon entropy of its characters × its length: 32 random hex digits have ~110 bits,
# "password" four times 88).
PRODUCTION_MIN_KEY_CHARS = 32
PRODUCTION_MIN_KEY_BITS = 96.0


def entropy_bits(secret: str) -> float:
    counts = Counter(secret)
    total = len(secret)
    per_char = -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0
    return per_char * total


def weakness(secret: str) -> str | None:
    """Why ``secret`` is too weak for production (never quoting it), or None."""
    if len(secret) < PRODUCTION_MIN_KEY_CHARS:
        return f"{len(secret)} characters; at least {PRODUCTION_MIN_KEY_CHARS} are required"
    if entropy_bits(secret) < PRODUCTION_MIN_KEY_BITS:
        return "too repetitive to be a secret; use a random key (e.g. openssl rand -hex 32)"
    return None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def key_id_for(key_hash: str) -> str:
    """A short, stable, non-secret name for a key (a prefix of its hash)."""
    return f"key_{key_hash[:12]}"


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_hash: str
    principal: Principal


def parse_key_entry(entry: str) -> tuple[str, Tier, str]:
    """``key``, ``key:tier`` or ``key:tier:tenant`` → (secret, tier, tenant)."""
    parts = entry.strip().split(":")
    secret = parts[0].strip()
    if not secret:
        raise ConfigurationError("API_KEYS has an empty key")
    if len(parts) > 3:
        raise ConfigurationError("API_KEYS entries take the form key, key:tier or key:tier:tenant")
    try:
        tier = Tier.parse(parts[1]) if len(parts) > 1 and parts[1].strip() else Tier.STANDARD
    except ValueError as exc:
        raise ConfigurationError(f"API_KEYS: {exc}") from None
    tenant = parts[2].strip() if len(parts) > 2 and parts[2].strip() else DEFAULT_TENANT
    reason = reserved_tenant(tenant)
    if reason is not None:
        raise ConfigurationError(f"API_KEYS: the tenant of a key is refused: {reason}")
    return secret, tier, tenant


class KeyRing:
    """Keys by hash. Built once; a lookup is one hash and one dict access."""

    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self._by_hash: Mapping[str, Principal] = {e.key_hash: e.principal for e in entries}

    @classmethod
    def from_secrets(cls, secrets: Iterable[tuple[str, Tier, str]]) -> KeyRing:
        entries = []
        for secret, tier, tenant in secrets:
            digest = hash_key(secret)
            entries.append(KeyEntry(digest, Principal(key_id_for(digest), tier, tenant)))
        return cls(entries)

    @classmethod
    def from_config(cls, api_keys: str, *, production: bool) -> KeyRing:
        """Keys from ``API_KEYS``; the development keys when none and not in production."""
        configured = [parse_key_entry(e) for e in api_keys.split(",") if e.strip()]
        if production:
            for number, (secret, _, _) in enumerate(configured, 1):
                reason = weakness(secret)
                if reason is not None:
                    raise ConfigurationError(
                        f"API_KEYS: key {number} is too weak for GATEWAY_ENV=production: {reason}"
                    )
        if configured:
            return cls.from_secrets(configured)
        if production:
            raise ConfigurationError(
                "GATEWAY_ENV=production but no API key is configured: set API_KEYS "
                "(the development keys are disabled in production)"
            )
        return cls.from_secrets((s, t, DEFAULT_TENANT) for s, t in DEVELOPMENT_KEYS)

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, secret: str) -> Principal | None:
        return self._by_hash.get(hash_key(secret))

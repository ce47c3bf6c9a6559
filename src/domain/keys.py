"""API keys: parsed from configuration, known only by their hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.errors import ConfigurationError
from domain.principal import DEFAULT_TENANT, Principal, Tier

# Active only when no key is configured and the environment is not production.
DEVELOPMENT_KEYS: tuple[tuple[str, Tier], ...] = (
    ("sk-test-key-123", Tier.STANDARD),
    ("sk-admin-key-456", Tier.ADMIN),
    ("sk-dev-key-789", Tier.DEVELOPER),
)


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

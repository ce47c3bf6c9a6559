"""API keys from configuration, and what each tier may do."""

from __future__ import annotations

import itertools

import pytest

from domain.errors import ConfigurationError
from domain.keys import DEVELOPMENT_KEYS, KeyRing
from domain.principal import DEFAULT_TENANT, Capability, Principal, Tier


def test_a_bare_key_is_standard_in_the_default_tenant() -> None:
    principal = KeyRing.from_config("sk-bare", production=False).lookup("sk-bare")

    assert principal is not None
    assert principal.tier is Tier.STANDARD
    assert principal.tenant == DEFAULT_TENANT


def test_key_colon_tier_sets_the_tier() -> None:
    principal = KeyRing.from_config("sk-dev:developer", production=False).lookup("sk-dev")

    assert principal is not None
    assert principal.tier is Tier.DEVELOPER
    assert principal.tenant == DEFAULT_TENANT


def test_key_colon_tier_colon_tenant_sets_both() -> None:
    principal = KeyRing.from_config("sk-root:admin:acme", production=False).lookup("sk-root")

    assert principal is not None
    assert principal.tier is Tier.ADMIN
    assert principal.tenant == "acme"


def test_several_entries_are_comma_separated_and_trimmed() -> None:
    keyring = KeyRing.from_config(" sk-a , sk-b:ADMIN:t1 ,", production=False)

    assert len(keyring) == 2
    b = keyring.lookup("sk-b")
    assert b is not None
    assert (b.tier, b.tenant) == (Tier.ADMIN, "t1")


def test_development_keys_serve_when_none_configured_outside_production() -> None:
    keyring = KeyRing.from_config("", production=False)

    assert len(keyring) == len(DEVELOPMENT_KEYS)
    for secret, tier in DEVELOPMENT_KEYS:
        principal = keyring.lookup(secret)
        assert principal is not None
        assert principal.tier is tier


def test_development_keys_are_off_once_a_key_is_configured() -> None:
    keyring = KeyRing.from_config("sk-mine", production=False)

    assert all(keyring.lookup(secret) is None for secret, _ in DEVELOPMENT_KEYS)


@pytest.mark.parametrize("api_keys", ["", "  ", " , "])
def test_production_without_keys_refuses_naming_api_keys(api_keys: str) -> None:
    with pytest.raises(ConfigurationError, match="API_KEYS"):
        KeyRing.from_config(api_keys, production=True)


STRONG = "sk-prod-7fQ2xL9mB4vT1cR8nW6yZ3kH5jD0pA"


def test_production_with_keys_has_no_development_keys() -> None:
    keyring = KeyRing.from_config(f"{STRONG}:admin", production=True)

    assert len(keyring) == 1
    assert keyring.lookup("sk-admin-key-456") is None


@pytest.mark.parametrize(
    "entry", ["sk-x:superuser", "sk-x:root:acme", ":admin", "sk-x:admin:acme:extra"]
)
def test_malformed_entries_refuse_to_start(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="API_KEYS"):
        KeyRing.from_config(entry, production=False)


def test_unknown_secret_looks_up_nobody() -> None:
    keyring = KeyRing.from_config("sk-known", production=False)

    assert keyring.lookup("sk-unknown") is None
    assert keyring.lookup("") is None


def test_key_id_is_stable_distinct_and_never_holds_the_secret() -> None:
    secrets = ["sk-live-secret-one", "sk-live-secret-two"]
    first = KeyRing.from_config(",".join(secrets), production=False)
    again = KeyRing.from_config(",".join(secrets), production=False)

    ids = []
    for secret in secrets:
        principal = first.lookup(secret)
        assert principal is not None
        assert secret not in principal.key_id
        assert principal == again.lookup(secret)
        ids.append(principal.key_id)
    assert len(set(ids)) == 2


STANDARD_MAY = {
    Capability.CHAT,
    Capability.READ_MODELS,
    Capability.READ_METRICS,
    Capability.SEARCH_DOCUMENTS,
    Capability.MANAGE_OWN_MEMORIES,
}
ALLOWED = {
    Tier.STANDARD: STANDARD_MAY,
    Tier.DEVELOPER: STANDARD_MAY | {Capability.WRITE_DOCUMENTS},
    Tier.ADMIN: set(Capability),
}


@pytest.mark.parametrize(("tier", "capability"), list(itertools.product(Tier, Capability)))
def test_principal_may_exactly_what_its_tier_allows(tier: Tier, capability: Capability) -> None:
    principal = Principal("key_x", tier)

    assert principal.may(capability) is (capability in ALLOWED[tier])


@pytest.mark.parametrize("secret", ["a", "sk-prod", "x" * 64, "password" * 4, "ab" * 20])
def test_production_refuses_short_or_repetitive_keys_without_quoting_them(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="API_KEYS: key 2 is too weak") as refused:
        KeyRing.from_config(f"{STRONG},{secret}:admin", production=True)
    if len(secret) > 4:  # "a" is in any sentence
        assert secret not in str(refused.value)
    assert KeyRing.from_config(f"{secret}:admin", production=False).lookup(secret) is not None


@pytest.mark.parametrize("tenant", ["*", "a*", "gateway:warm-up"])
def test_reserved_tenants_refuse_to_start(tenant: str) -> None:
    # ":" splits an entry, so "gateway:warm-up" cannot even be written as a tenant.
    with pytest.raises(ConfigurationError, match="API_KEYS"):
        KeyRing.from_config(f"{STRONG}:developer:{tenant}", production=False)

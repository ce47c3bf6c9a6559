"""``FakeKeyStore``: the KeyStore port as dicts a test can read and change.

``keys`` by id, ``usage[(key_id, period)]`` in tokens. ``allowed_models`` come back as a
tuple, as from every adapter. Set ``down`` to make every call fail with
``BackendUnavailable``."""

from __future__ import annotations

from dataclasses import replace

from domain.errors import BackendUnavailable, InvalidRequest
from domain.health import ServiceHealth, Status
from domain.limits import ManagedKey


class FakeKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, ManagedKey] = {}
        self.usage_by_period: dict[tuple[str, str], int] = {}
        self.down = False

    def _available(self) -> None:
        if self.down:
            raise BackendUnavailable("the fake key store is down")

    async def create(self, key: ManagedKey) -> None:
        self._available()
        if key.id in self.keys or any(k.key_hash == key.key_hash for k in self.keys.values()):
            raise InvalidRequest(f"A key with this id or hash exists already: {key.id}")
        models = key.policy.allowed_models
        if models is not None:
            key = replace(key, policy=replace(key.policy, allowed_models=tuple(models)))
        self.keys[key.id] = key

    async def find_by_hash(self, key_hash: str) -> ManagedKey | None:
        self._available()
        return next((k for k in self.keys.values() if k.key_hash == key_hash), None)

    async def get(self, key_id: str) -> ManagedKey | None:
        self._available()
        return self.keys.get(key_id)

    async def list_keys(self) -> list[ManagedKey]:
        self._available()
        return sorted(self.keys.values(), key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, now: float) -> bool:
        self._available()
        key = self.keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return False
        self.keys[key_id] = replace(key, revoked_at=now)
        return True

    async def touch(self, key_id: str, now: float) -> None:
        self._available()
        if key_id in self.keys:
            self.keys[key_id] = replace(self.keys[key_id], last_used_at=now)

    async def add_usage(self, key_id: str, period: str, tokens: int) -> int:
        self._available()
        total = self.usage_by_period.get((key_id, period), 0) + tokens
        self.usage_by_period[(key_id, period)] = total
        return total

    async def reserve_usage(
        self, key_id: str, period: str, tokens: int, quota: int
    ) -> tuple[bool, int]:
        self._available()
        used = self.usage_by_period.get((key_id, period), 0)
        if used + tokens > quota:
            return False, used
        self.usage_by_period[(key_id, period)] = used + tokens
        return True, used + tokens

    async def usage(self, key_id: str, period: str) -> int:
        self._available()
        return self.usage_by_period.get((key_id, period), 0)

    async def check(self) -> ServiceHealth:
        status = Status.UNHEALTHY if self.down else Status.HEALTHY
        return ServiceHealth("key_store", status, 0.0)

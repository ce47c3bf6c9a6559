"""Managed API keys and their usage."""

from __future__ import annotations

from typing import Protocol

from domain.health import ServiceHealth
from domain.limits import ManagedKey


class KeyStore(Protocol):
    """Keys by id and by hash (never by secret). Errors: ``BackendUnavailable``."""

    async def create(self, key: ManagedKey) -> None: ...

    async def find_by_hash(self, key_hash: str) -> ManagedKey | None:
        """The key with this hash, revoked ones included (the caller refuses them)."""
        ...

    async def get(self, key_id: str) -> ManagedKey | None: ...

    async def list_keys(self) -> list[ManagedKey]: ...

    async def revoke(self, key_id: str, now: float) -> bool:
        """False when there is no such key (or it was revoked already)."""
        ...

    async def touch(self, key_id: str, now: float) -> None:
        """Record that the key was used (``last_used_at``)."""
        ...

    async def add_usage(self, key_id: str, period: str, tokens: int) -> int:
        """Add tokens (negative: give back) to the key's usage in ``period``; returns
        the new total."""
        ...

    async def reserve_usage(
        self, key_id: str, period: str, tokens: int, quota: int
    ) -> tuple[bool, int]:
        """Atomically: add ``tokens`` to the key's usage in ``period`` unless that would
        take it above ``quota``. Returns (added?, the usage after). N instances sharing
        the store never reserve more than ``quota`` together."""
        ...

    async def usage(self, key_id: str, period: str) -> int: ...

    async def check(self) -> ServiceHealth: ...

"""The audit trail of administrative actions."""

from __future__ import annotations

from typing import Protocol


class AuditLog(Protocol):
    def record(self, action: str, actor: str, target: str, **fields: object) -> None:
        """Who (a key id) did what to which target, now. Never a secret."""
        ...

"""Operational events the application reports (failovers, retries, circuit changes)."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def event(self, name: str, target: str, **fields: object) -> None:
        """Count ``name`` for ``target`` (an upstream or model name, never a secret)
        and log it with ``fields``."""
        ...

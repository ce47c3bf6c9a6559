"""Audit lines: one structured log line per administrative action."""

from __future__ import annotations

import time

import structlog

_audit = structlog.get_logger("gateway.audit")


class StructlogAuditLog:
    def record(self, action: str, actor: str, target: str, **fields: object) -> None:
        _audit.info("audit", action=action, actor=actor, target=target, at=time.time(), **fields)

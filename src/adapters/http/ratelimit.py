"""Rate limits at the HTTP edge: OpenAI's ``x-ratelimit-*`` headers and the guard that
admits every authenticated request (generation routes admit with their tokens)."""

from __future__ import annotations

import math
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from domain.limits import Admission

STATE_KEY = "ratelimit"


def _duration(seconds: float) -> str:
    # OpenAI writes resets as durations: "1s", "6m0s", "20ms".
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def ratelimit_raw_headers(admission: Admission) -> list[tuple[bytes, bytes]]:
    """The ``x-ratelimit-*`` headers (and ``retry-after`` when refused) as ASGI header
    pairs: every admitted answer carries them, so they are built as bytes at once."""
    headers = [
        (b"x-ratelimit-limit-requests", str(admission.limit_requests).encode()),
        (b"x-ratelimit-remaining-requests", str(admission.remaining_requests).encode()),
        (b"x-ratelimit-reset-requests", _duration(admission.reset_requests_s).encode()),
        (b"x-ratelimit-limit-tokens", str(admission.limit_tokens).encode()),
        (b"x-ratelimit-remaining-tokens", str(admission.remaining_tokens).encode()),
        (b"x-ratelimit-reset-tokens", _duration(admission.reset_tokens_s).encode()),
    ]
    if not admission.allowed:
        headers.append((b"retry-after", str(max(1, math.ceil(admission.retry_after_s))).encode()))
    return headers


def ratelimit_headers(admission: Admission) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in ratelimit_raw_headers(admission)}


def remember_admission(
    connection: ASGIConnection[Any, Any, Any, Any], admission: Admission | None
) -> None:
    """The response of this request will carry the admission's headers."""
    if admission is not None:
        connection.scope.setdefault("state", {})[STATE_KEY] = admission


async def admitted(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: one request from the key's budget (no tokens)."""
    admission = await connection.app.state.services.admission.admit(connection.user)
    remember_admission(connection, admission)

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


def ratelimit_headers(admission: Admission) -> dict[str, str]:
    headers = {
        "x-ratelimit-limit-requests": str(admission.limit_requests),
        "x-ratelimit-remaining-requests": str(admission.remaining_requests),
        "x-ratelimit-reset-requests": _duration(admission.reset_requests_s),
        "x-ratelimit-limit-tokens": str(admission.limit_tokens),
        "x-ratelimit-remaining-tokens": str(admission.remaining_tokens),
        "x-ratelimit-reset-tokens": _duration(admission.reset_tokens_s),
    }
    if not admission.allowed:
        headers["retry-after"] = str(max(1, math.ceil(admission.retry_after_s)))
    return headers


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

"""Rate limits at the HTTP edge: OpenAI's ``x-ratelimit-*`` headers and the guard that
admits every authenticated request (generation routes admit with their tokens)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from application.access import AdmissionControl, Generation, GenerationAsk, KeyQuotaExceeded
from domain.limits import Admission, duration

STATE_KEY = "ratelimit"


def ratelimit_raw_headers(admission: Admission) -> list[tuple[bytes, bytes]]:
    """The ``x-ratelimit-*`` headers (and ``retry-after`` when refused) as ASGI header
    pairs: every admitted answer carries them, so they are built as bytes at once."""
    headers = [
        (b"x-ratelimit-limit-requests", str(admission.limit_requests).encode()),
        (b"x-ratelimit-remaining-requests", str(admission.remaining_requests).encode()),
        (b"x-ratelimit-reset-requests", duration(admission.reset_requests_s).encode()),
        (b"x-ratelimit-limit-tokens", str(admission.limit_tokens).encode()),
        (b"x-ratelimit-remaining-tokens", str(admission.remaining_tokens).encode()),
        (b"x-ratelimit-reset-tokens", duration(admission.reset_tokens_s).encode()),
    ]
    if not admission.allowed:
        headers.append((b"retry-after", str(admission.retry_after_whole_s).encode()))
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


@asynccontextmanager
async def admitted_generation(
    connection: ASGIConnection[Any, Any, Any, Any],
    admission: AdmissionControl,
    ask: GenerationAsk,
) -> AsyncIterator[Generation]:
    """``AdmissionControl.generation`` for this request: its answer carries the
    admission's headers; a spent quota's 429 tells SDKs not to retry before the
    period ends (``x-should-retry: false``, ``retry-after``)."""
    try:
        async with admission.generation(connection.user, ask) as grant:
            remember_admission(connection, grant.admission)
            yield grant
    except KeyQuotaExceeded as exc:
        exc.headers = quota_headers(exc)  # type: ignore[attr-defined]  # the error handler's
        raise


def quota_headers(exc: KeyQuotaExceeded) -> dict[str, str]:
    quota = exc.quota
    return {
        "x-should-retry": "false",
        "retry-after": str(max(1, math.ceil(quota.resets_in_s))),
        "x-ratelimit-limit-tokens": str(quota.quota),
        "x-ratelimit-remaining-tokens": str(quota.remaining),
        "x-ratelimit-reset-tokens": duration(quota.resets_in_s),
    }

"""Memory and RAG for standard clients, asked for with headers on /v1/chat/completions,
/v1/messages and /v1/responses (``application.protocols.client_context``):

- ``X-Gateway-User-Id``: whose memories;
- ``X-Gateway-Memory: true``: the user's memories in the context, the turn stored;
- ``X-Gateway-RAG: true``: the tenant's documents in the context.

The answer then carries ``x-gateway-stages`` (each retrieval stage's time, in the
``Server-Timing`` syntax), ``x-gateway-context`` (what was put before the model),
``x-gateway-degraded`` (a stage that failed or missed its deadline), with RAG
``x-gateway-references`` (the passages as numbered for the model: document, chunk, page,
heading path, character span; JSON) and, on a non-streamed answer,
``x-gateway-citations`` (the numbers the answer cites as ``[n]``, JSON; ``[]`` when none)
and, once its turn is queued, ``x-gateway-memory-id``.

A managed key may turn memory and RAG on by default (``context`` on ``POST /v1/keys``),
for clients that send no header; a header still overrides its default, off included."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar.connection import ASGIConnection

from adapters.http.services import Services
from adapters.http.wire import PassageReference
from application.protocols.client_context import ContextAsk, Prepared, context_ask
from domain.citations import citations_in
from domain.documents import DocumentHit
from domain.errors import InvalidRequest
from domain.principal import Principal

USER_HEADER = "x-gateway-user-id"
MEMORY_HEADER = "x-gateway-memory"
RAG_HEADER = "x-gateway-rag"
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("", "0", "false", "off", "no")
_UNSAFE = re.compile(r"[^\x20-\x7e]")
REFERENCES_MAX_BYTES = 8192  # a header, not a body: passages past it are left out


def passage_reference(number: int, hit: DocumentHit) -> PassageReference:
    """Where a passage comes from, as the answer's ``[number]`` names it."""
    where = hit.metadata
    return PassageReference(
        number=number,
        document_id=where.get("document_id"),
        source=where.get("source"),
        chunk_id=where.get("chunk_id"),
        page=where.get("page"),
        heading_path=list(where.get("heading_path") or []),
        start=where.get("start"),
        end=where.get("end"),
    )


def references_header(passages: Sequence[DocumentHit]) -> str:
    """The passages' references as ASCII JSON (a header's characters), at most
    ``REFERENCES_MAX_BYTES``: the first passages whole, never one cut."""
    out: list[str] = []
    size = 2
    for number, hit in enumerate(passages, 1):
        ref = msgspec.to_builtins(passage_reference(number, hit))
        item = json.dumps(ref, ensure_ascii=True, separators=(",", ":"))
        if size + len(item) + 1 > REFERENCES_MAX_BYTES:
            break
        out.append(item)
        size += len(item) + 1
    return f"[{','.join(out)}]"


def _flag(connection: ASGIConnection[Any, Any, Any, Any], name: str, shown: str) -> bool | None:
    value = connection.headers.get(name)
    if value is None:
        return None  # not said: the key's default
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidRequest(f"{shown} must be true or false", param=shown)


def asked_context(connection: ASGIConnection[Any, Any, Any, Any]) -> ContextAsk | None:
    """What the headers ask for over the key's defaults; None when nothing (the common
    case)."""
    headers = connection.headers
    return context_ask(
        connection.user,
        memory=_flag(connection, MEMORY_HEADER, "X-Gateway-Memory"),
        rag=_flag(connection, RAG_HEADER, "X-Gateway-RAG"),
        user_id=headers.get(USER_HEADER) or None,
    )


class Augmented:
    """One request's context: ``body`` to send, then ``remember(answer)``, and the
    headers of its answer."""

    def __init__(self, services: Services, principal: Principal, ask: ContextAsk) -> None:
        self._services = services
        self._principal = principal
        self._ask = ask
        self.prepared: Prepared | None = None
        self._answer: str | None = None

    async def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        context = self._services.client_context
        if context is None:
            return body
        self.prepared = await context.prepare(self._principal, body, self._ask)
        return self.prepared.body

    async def remember(self, answer: str | None, finish_reason: str | None) -> None:
        """The turn queued for storage, if it was answered in full."""
        self._answer = answer
        context = self._services.client_context
        if context is None or self.prepared is None or finish_reason is None:
            return
        await context.remember(self._principal, self.prepared, answer or "")

    def headers(self) -> dict[str, str]:
        prepared = self.prepared
        if prepared is None:
            return {}
        stages = ", ".join(f"{stage};dur={ms:.3f}" for stage, ms in prepared.timings_ms.items())
        headers = {
            "x-gateway-stages": stages,
            "x-gateway-context": f"memories={prepared.memories}, documents={prepared.documents}",
        }
        if prepared.degraded:
            said = "; ".join(f"{d.stage}: {d.reason}" for d in prepared.degraded)
            headers["x-gateway-degraded"] = _UNSAFE.sub(" ", said)[:1000]
        if prepared.passages:
            headers["x-gateway-references"] = references_header(prepared.passages)
            if self._answer is not None:  # a non-streamed answer: known before its headers
                cited = citations_in(self._answer, prepared.passages)
                headers["x-gateway-citations"] = json.dumps([c.number for c in cited])
        if prepared.memory_id:
            headers["x-gateway-memory-id"] = prepared.memory_id
        return headers


def augmented(
    connection: ASGIConnection[Any, Any, Any, Any], services: Services
) -> Augmented | None:
    """The request's context, when its headers or its key's defaults ask for one."""
    ask = asked_context(connection)
    if ask is None:
        return None
    return Augmented(services, connection.user, ask)

"""Memory and RAG for clients that speak only a standard protocol: on request, a chat
completion request (the client's, or one translated from Messages or Responses) gets
the unified chat's retrieved context, under its latency budget, and the turn is queued
for storage (write-behind) once answered. Never on unless the caller asks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from application.memories import Memories
from application.unified_chat import Degradation, UnifiedChat, UnifiedChatRequest
from domain.budget import LatencyBudget
from domain.context import ContextBundle
from domain.conversation import ROLES, Conversation
from domain.errors import BackendUnavailable, InvalidRequest
from domain.memory import render_turn
from domain.principal import Principal
from ports.clock import Clock


@dataclass(frozen=True, slots=True)
class ContextAsk:
    """What the caller asked for: ``memory`` (read the user's memories and store the
    turn; needs ``user_id``) and ``rag`` (the tenant's documents)."""

    user_id: str | None = None
    memory: bool = False
    rag: bool = False

    @property
    def wanted(self) -> bool:
        return self.memory or self.rag


@dataclass(slots=True)
class Prepared:
    """A request with its context: ``body`` to send upstream; the stages' timings (ms),
    what was retrieved, what degraded; ``memory_id`` once the turn is queued."""

    body: dict[str, Any]
    query: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    memories: int = 0
    documents: int = 0
    degraded: list[Degradation] = field(default_factory=list)
    memory_id: str | None = None


def _text(content: Any) -> str | None:
    """A message's text: a string, or the text of its parts (OpenAI's or Anthropic's)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "".join(texts) if texts else None
    return None


def conversation_of(messages: Sequence[Mapping[str, Any]]) -> Conversation | None:
    """The conversation's text messages (tool traffic left out); None without a user's
    question to retrieve for."""
    pairs = []
    for message in messages:
        role, text = message.get("role"), _text(message.get("content"))
        if role in ROLES and text:
            pairs.append((str(role), text))
    if not any(role == "user" and text.strip() for role, text in pairs):
        return None
    return Conversation.of(pairs)


def with_context(body: Mapping[str, Any], context: str | None) -> dict[str, Any]:
    """``body`` with ``context`` as a system message after the client's own system
    messages, as the unified chat puts it."""
    out = dict(body)
    if not context:
        return out
    messages = list(body.get("messages") or [])
    at = 0
    while at < len(messages) and messages[at].get("role") in ("system", "developer"):
        at += 1
    messages.insert(at, {"role": "system", "content": context})
    out["messages"] = messages
    return out


class ClientContext:
    def __init__(
        self,
        unified: UnifiedChat,
        memories: Memories,
        clock: Clock,
        *,
        budget_ms: float = 3000.0,
        retrieval_share: float = 0.25,
    ) -> None:
        self._unified = unified
        self._memories = memories
        self._clock = clock
        self._budget_ms = budget_ms
        self._share = retrieval_share

    async def prepare(
        self, principal: Principal, body: Mapping[str, Any], ask: ContextAsk
    ) -> Prepared:
        """The body with the retrieved context. A stage that fails or misses its
        deadline is named in ``degraded``; the request goes on without it."""
        if ask.memory and not ask.user_id:
            raise InvalidRequest(
                "X-Gateway-Memory needs X-Gateway-User-Id: memory is kept per user",
                param="X-Gateway-User-Id",
            )
        conversation = conversation_of(body.get("messages") or [])
        if conversation is None:
            prepared = Prepared(dict(body), "")
            prepared.degraded.append(Degradation("retrieval", "no user message to retrieve for"))
            return prepared
        request = UnifiedChatRequest(
            messages=[(m.role, m.content) for m in conversation.messages],
            user_id=ask.user_id,
            use_memory=ask.memory,
            use_rag=ask.rag,
            store_memory=ask.memory,
        )
        budget = LatencyBudget(self._budget_ms, self._clock.monotonic, self._share)
        retrieved = await self._unified.retrieve(principal, request, budget, conversation)
        context: ContextBundle = retrieved.context
        return Prepared(
            body=with_context(body, context.render()),
            query=conversation.query,
            timings_ms=dict(budget.timings_ms),
            memories=len(context.memories) + len(context.recent),
            documents=len(context.documents),
            degraded=list(retrieved.degraded),
        )

    async def remember(
        self, principal: Principal, ask: ContextAsk, prepared: Prepared, answer: str
    ) -> None:
        """Queue the turn for storage as the user's memory (when memory was asked)."""
        if not (ask.memory and ask.user_id and prepared.query):
            return
        try:
            prepared.memory_id = await self._memories.remember(
                principal.tenant, ask.user_id, render_turn(prepared.query, answer)
            )
        except BackendUnavailable as exc:
            prepared.degraded.append(Degradation("memory_storage", exc.message))

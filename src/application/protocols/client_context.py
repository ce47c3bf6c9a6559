"""Memory and RAG for clients that speak only a standard protocol: on request, a chat
completion request (the client's, or one translated from Messages or Responses) gets
the unified chat's retrieved context, under its latency budget, and the turn is queued
for storage (write-behind) once answered. Never on unless the caller asks or its
key is configured to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from application.memories import Memories
from application.unified_chat import Degradation, UnifiedChat, UnifiedChatRequest
from domain.budget import LatencyBudget
from domain.context import ContextBundle
from domain.conversation import ROLES, Conversation
from domain.documents import DocumentHit
from domain.errors import BackendUnavailable, InvalidRequest
from domain.limits import ContextDefaults, ContextUser
from domain.memory import render_turn
from domain.principal import Principal
from domain.stages import Stage
from ports.clock import Clock


@dataclass(frozen=True, slots=True)
class ContextAsk:
    """What a request gets: ``memory`` (read the user's memories and store the turn;
    needs a user) and ``rag`` (the tenant's documents). ``user_id``: whose memories,
    or, with ``user_from_request``, the body's ``user``. Without a user, memory is a
    400 when the caller asked for it (``user_required``), else skipped (a key's
    default), said in ``degraded``."""

    user_id: str | None = None
    memory: bool = False
    rag: bool = False
    user_required: bool = True
    user_from_request: bool = False

    @property
    def wanted(self) -> bool:
        return self.memory or self.rag


def context_ask(
    principal: Principal,
    *,
    memory: bool | None = None,
    rag: bool | None = None,
    user_id: str | None = None,
) -> ContextAsk | None:
    """The caller's asks (``None``: not said) over its key's defaults; None when the
    request gets no context (the common case)."""
    defaults = principal.policy.context if principal.policy is not None else ContextDefaults()
    use_memory = defaults.memory if memory is None else memory
    use_rag = defaults.rag if rag is None else rag
    if not (use_memory or use_rag):
        return None
    source = defaults.user_id_from
    if user_id is None and source is ContextUser.KEY:
        user_id = principal.key_id
    return ContextAsk(
        user_id=user_id,
        memory=use_memory,
        rag=use_rag,
        user_required=memory is True,
        user_from_request=user_id is None and source is ContextUser.REQUEST,
    )


@dataclass(slots=True)
class Prepared:
    """A request with its context: ``body`` to send upstream; the stages' timings (ms),
    what was retrieved, what degraded; whose memory (``user_id``, when ``memory``);
    ``memory_id`` once the turn is queued."""

    body: dict[str, Any]
    query: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    memories: int = 0
    documents: int = 0
    degraded: list[Degradation] = field(default_factory=list)
    memory_id: str | None = None
    user_id: str | None = None
    memory: bool = False
    # The knowledge base's passages as numbered for the model ([1], [2], ...).
    passages: tuple[DocumentHit, ...] = ()


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
        user_id, memory = ask.user_id, ask.memory
        if user_id is None and ask.user_from_request:
            user = body.get("user")
            user_id = user if isinstance(user, str) and user.strip() else None
        skipped: list[Degradation] = []
        if memory and not user_id:
            if ask.user_required:
                raise InvalidRequest(
                    "X-Gateway-Memory needs X-Gateway-User-Id: memory is kept per user",
                    param="X-Gateway-User-Id",
                )
            memory = False  # the key's default, for a request that names nobody
            skipped.append(Degradation(Stage.MEMORY, "no user id (X-Gateway-User-Id)"))
        conversation = conversation_of(body.get("messages") or [])
        if conversation is None or not (memory or ask.rag):
            prepared = Prepared(dict(body), "", degraded=skipped)
            if conversation is None:
                reason = "no user message to retrieve for"
                prepared.degraded.append(Degradation(Stage.RETRIEVAL, reason))
            return prepared
        request = UnifiedChatRequest(
            messages=[(m.role, m.content) for m in conversation.messages],
            user_id=user_id,
            use_memory=memory,
            use_rag=ask.rag,
            store_memory=memory,
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
            degraded=[*skipped, *retrieved.degraded],
            user_id=user_id,
            memory=memory,
            passages=tuple(context.documents),
        )

    async def remember(self, principal: Principal, prepared: Prepared, answer: str) -> None:
        """Queue the turn for storage as the user's memory (when memory was asked)."""
        if not (prepared.memory and prepared.user_id and prepared.query):
            return
        try:
            prepared.memory_id = await self._memories.remember(
                principal.tenant, prepared.user_id, render_turn(prepared.query, answer)
            )
        except BackendUnavailable as exc:
            prepared.degraded.append(Degradation(Stage.MEMORY_STORAGE, exc.message))

"""``/v1/chat``: memory + RAG + inference under a latency budget.

The query is embedded once; memory and document retrieval run concurrently on that
vector until the budget's retrieval deadline. A stage that fails or misses it is
dropped and named in ``degraded``: the answer still comes. The turn is queued for
storage as memory and the answer returns at once with its ``memory_id``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from application.chat_completions import ChatCompletions
from application.knowledge_base import KnowledgeBase
from application.memories import Memories
from domain.budget import LatencyBudget
from domain.chat import ChatRequest, Usage
from domain.citations import Citation, citations_in
from domain.context import ContextBundle
from domain.conversation import Conversation
from domain.errors import BackendUnavailable, InvalidRequest
from domain.memory import MemoryHit, render_turn
from domain.principal import Principal, Tier
from domain.stages import Stage
from ports.chat_model import ChatStream
from ports.clock import Clock
from ports.embedder import Embedder

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UnifiedChatRequest:
    messages: Sequence[tuple[str, str]]
    model: str | None = None
    user_id: str | None = None
    use_memory: bool = True
    use_rag: bool = True
    store_memory: bool = True
    rag_k: int = 3
    memory_limit: int = 5
    max_tokens: int = 2048
    temperature: float = 0.7
    top_p: float = 0.9
    latency_budget_ms: float | None = None
    rag_filter: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Degradation:
    stage: Stage
    reason: str


@dataclass(slots=True)
class Retrieved:
    context: ContextBundle
    degraded: list[Degradation]


@dataclass(slots=True)
class UnifiedMetadata:
    embedding_ms: float = 0.0
    memory_retrieval_ms: float = 0.0
    rag_retrieval_ms: float = 0.0
    generation_ms: float = 0.0
    total_latency_ms: float = 0.0
    memories_retrieved: int = 0
    rag_documents_retrieved: int = 0
    memory_stored: bool = False
    memory_id: str | None = None
    degraded: list[Degradation] = field(default_factory=list)
    within_budget: bool = True
    latency_budget_ms: float = 0.0
    # The numbered passages the answer cites ([n] in its text), in order.
    citations: list[Citation] = field(default_factory=list)


@dataclass(slots=True)
class UnifiedAnswer:
    id: str
    created: int
    model: str
    content: str | None
    finish_reason: str | None
    usage: Usage | None
    context: ContextBundle
    metadata: UnifiedMetadata


@dataclass(frozen=True, slots=True)
class WarmUp:
    """What one retrieval at start cost, stage by stage, and what failed."""

    timings_ms: dict[str, float]
    degraded: list[Degradation]


# A caller no key can be: its searches read nothing any tenant stored.
WARM_UP_CALLER = Principal("warm-up", Tier.STANDARD, tenant="gateway:warm-up")
# Cold, loading a model can take a second or two; a backend that hangs must not hold the
# start for longer than this budget's retrieval share.
WARM_UP_BUDGET_MS = 20_000.0


NO_USER_ID = (
    "no user_id: memory is kept per user, so none was read and the turn is not stored "
    "(send user_id, or use_memory and store_memory false)"
)


@dataclass(frozen=True, slots=True)
class ChatLimits:
    default_budget_ms: float = 3000
    min_budget_ms: float = 100
    max_budget_ms: float = 60_000
    retrieval_share: float = 0.25
    context_tokens: int = 1500
    recent_turns: int = 6
    # A memory less similar (cosine) to the query than this is not put in the prompt.
    memory_min_similarity: float = 0.1


class UnifiedStream:
    """A streamed unified answer: ``context`` is known at once (retrieval is done);
    ``chunks()`` starts generation and yields the chunks as they arrive (an upstream
    failure is raised from it); then ``finish()`` gives the metadata (and stores the
    turn)."""

    def __init__(
        self,
        context: ContextBundle,
        generate: Callable[[], Awaitable[ChatStream]],
        finish: Callable[[ChatStream], Awaitable[tuple[UnifiedMetadata, Usage | None]]],
    ) -> None:
        self.context = context
        self._generate = generate
        self._stream: ChatStream | None = None
        self._finish = finish

    async def chunks(self) -> AsyncIterator[bytes]:
        self._stream = await self._generate()
        async for payload in self._stream:
            # The usage-only chunk becomes part of the metadata event.
            if not self._stream.usage_only:
                yield payload

    async def finish(self) -> tuple[UnifiedMetadata, Usage | None]:
        if self._stream is None:
            raise RuntimeError("finish() before the chunks were read")
        return await self._finish(self._stream)

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()


class UnifiedChat:
    def __init__(
        self,
        completions: ChatCompletions,
        embedder: Embedder,
        knowledge_base: KnowledgeBase,
        memories: Memories,
        clock: Clock,
        limits: ChatLimits,
    ) -> None:
        self._completions = completions
        self._embedder = embedder
        self._knowledge_base = knowledge_base
        self._memories = memories
        self._clock = clock
        self._limits = limits

    def _budget(self, request: UnifiedChatRequest) -> LatencyBudget:
        total = request.latency_budget_ms or self._limits.default_budget_ms
        low, high = self._limits.min_budget_ms, self._limits.max_budget_ms
        if not low <= total <= high:
            raise InvalidRequest(
                f"latency_budget_ms must be between {low:.0f} and {high:.0f}",
                param="latency_budget_ms",
            )
        return LatencyBudget(total, self._clock.monotonic, self._limits.retrieval_share)

    async def _timed(
        self, budget: LatencyBudget, stage: Stage, work: Awaitable[T], deadline: float
    ) -> tuple[T | None, Degradation | None]:
        """Run a retrieval stage until ``deadline`` (loop time); never raises for a
        backend failure or a missed deadline: it reports them."""
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout_at(deadline):
                result = await work
        except TimeoutError:
            return None, Degradation(stage, "missed its deadline in the latency budget")
        except BackendUnavailable as exc:
            return None, Degradation(stage, exc.message)
        finally:
            budget.record(stage, (self._clock.monotonic() - started) * 1000)
        return result, None

    async def retrieve(
        self, principal: Principal, request: UnifiedChatRequest, budget: LatencyBudget,
        conversation: Conversation,
    ) -> Retrieved:  # fmt: skip
        want_memory = request.use_memory and request.user_id is not None
        want_rag = request.use_rag
        degraded: list[Degradation] = []
        if request.user_id is None and (request.use_memory or request.store_memory):
            # Memory is kept per user: without one it is off, and the answer says so.
            degraded.append(Degradation(Stage.MEMORY, NO_USER_ID))
        if not (want_memory or want_rag):
            return Retrieved(ContextBundle(), degraded)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget.retrieval_deadline_s()
        query = conversation.query
        vector, failed = await self._timed(
            budget, Stage.EMBEDDING, self._embedder.embed_query(query), deadline
        )
        if vector is None:
            degraded.append(failed or Degradation(Stage.EMBEDDING, "no vector"))
            skipped = "skipped: the query could not be embedded"
            if want_memory:
                degraded.append(Degradation(Stage.MEMORY_RETRIEVAL, skipped))
            if want_rag:
                degraded.append(Degradation(Stage.RAG_RETRIEVAL, skipped))
            return Retrieved(ContextBundle(), degraded)

        async def recent_turns(user_id: str) -> list[str]:
            # Short-term context failing (Redis down) must not cost the long-term hits.
            try:
                return await self._memories.recent(
                    principal.tenant, user_id, self._limits.recent_turns
                )
            except BackendUnavailable as exc:
                degraded.append(Degradation(Stage.SHORT_TERM_CONTEXT, exc.message))
                return []

        async def remembered() -> tuple[list[MemoryHit], list[str]]:
            user_id = request.user_id or ""
            return await asyncio.gather(
                self._memories.recall(
                    principal.tenant, user_id, query, request.memory_limit, vector
                ),
                recent_turns(user_id),
            )

        async def not_asked() -> tuple[None, None]:  # a stage not run reports no time
            return None, None

        memory_stage = (
            self._timed(budget, Stage.MEMORY_RETRIEVAL, remembered(), deadline)
            if want_memory
            else not_asked()
        )
        rag_stage = (
            self._timed(budget, Stage.RAG_RETRIEVAL, self._knowledge_base.search(
                principal, query, request.rag_k, request.rag_filter, vector
            ), deadline)
            if want_rag
            else not_asked()
        )  # fmt: skip
        (memory_result, memory_failed), (documents, rag_failed) = await asyncio.gather(
            memory_stage, rag_stage
        )
        degraded += [d for d in (memory_failed, rag_failed) if d is not None]
        memories, recent = memory_result or ([], [])
        floor = self._limits.memory_min_similarity
        memories = [m for m in memories if m.similarity >= floor]
        context = ContextBundle.build(
            memories,
            documents or [],
            token_budget=self._limits.context_tokens,
            count_tokens=self._embedder.count_tokens,
            recent=recent,
        )
        return Retrieved(context, degraded)

    async def warm_up(self) -> WarmUp:
        """One retrieval as a chat turn runs it (embedding, then memory and documents
        together), so the first user's request does not pay for loading the embedding
        model and opening the engine's segments. Reads only; never raises."""
        request = UnifiedChatRequest(messages=[("user", "warm up")], user_id="warm-up")
        budget = LatencyBudget(
            WARM_UP_BUDGET_MS, self._clock.monotonic, self._limits.retrieval_share
        )
        retrieved = await self.retrieve(
            WARM_UP_CALLER, request, budget, Conversation.of(request.messages)
        )
        return WarmUp(dict(budget.timings_ms), retrieved.degraded)

    def _generation_request(
        self, request: UnifiedChatRequest, conversation: Conversation, context: ContextBundle,
        stream: bool,
    ) -> ChatRequest:  # fmt: skip
        body: dict[str, Any] = {
            "messages": conversation.render(context.render()),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.model:
            body["model"] = request.model
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return ChatRequest(body)

    async def _remember(
        self, principal: Principal, request: UnifiedChatRequest, query: str, answer: str,
        metadata: UnifiedMetadata,
    ) -> None:  # fmt: skip
        if not (request.store_memory and request.user_id is not None):
            return
        try:
            metadata.memory_id = await self._memories.remember(
                principal.tenant, request.user_id, render_turn(query, answer)
            )
            metadata.memory_stored = True
        except BackendUnavailable as exc:
            metadata.degraded.append(Degradation(Stage.MEMORY_STORAGE, exc.message))

    def _metadata(self, budget: LatencyBudget, retrieved: Retrieved) -> UnifiedMetadata:
        timings = budget.timings_ms
        return UnifiedMetadata(
            embedding_ms=timings.get(Stage.EMBEDDING, 0.0),
            memory_retrieval_ms=timings.get(Stage.MEMORY_RETRIEVAL, 0.0),
            rag_retrieval_ms=timings.get(Stage.RAG_RETRIEVAL, 0.0),
            memories_retrieved=len(retrieved.context.memories),
            rag_documents_retrieved=len(retrieved.context.documents),
            degraded=list(retrieved.degraded),
            latency_budget_ms=budget.total_ms,
        )

    def _close(self, metadata: UnifiedMetadata, budget: LatencyBudget) -> None:
        metadata.total_latency_ms = round(budget.elapsed_ms(), 3)
        metadata.within_budget = budget.within_budget

    async def answer(self, principal: Principal, request: UnifiedChatRequest) -> UnifiedAnswer:
        conversation = Conversation.of(request.messages)
        budget = self._budget(request)
        retrieved = await self.retrieve(principal, request, budget, conversation)
        metadata = self._metadata(budget, retrieved)
        started = self._clock.monotonic()
        completion = await self._completions.complete(
            self._generation_request(request, conversation, retrieved.context, stream=False)
        )
        metadata.generation_ms = round((self._clock.monotonic() - started) * 1000, 3)
        metadata.citations = citations_in(completion.content, retrieved.context.documents)
        if completion.finish_reason is not None:  # a cut answer is no turn to remember
            await self._remember(
                principal, request, conversation.query, completion.content or "", metadata
            )
        self._close(metadata, budget)
        return UnifiedAnswer(
            id=f"unified-{uuid.uuid4().hex[:24]}",
            created=int(self._clock.now()),
            model=completion.model,
            content=completion.content,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            context=retrieved.context,
            metadata=metadata,
        )

    async def stream(self, principal: Principal, request: UnifiedChatRequest) -> UnifiedStream:
        """Returns as soon as retrieval is done, before generation starts, so that the
        context can be sent at once. An unknown model is raised here; the upstream's
        errors when the chunks are read."""
        conversation = Conversation.of(request.messages)
        budget = self._budget(request)
        await self._completions.resolve(request.model)
        retrieved = await self.retrieve(principal, request, budget, conversation)
        metadata = self._metadata(budget, retrieved)
        started = self._clock.monotonic()

        async def generate() -> ChatStream:
            nonlocal started
            started = self._clock.monotonic()
            return await self._completions.stream(
                self._generation_request(request, conversation, retrieved.context, stream=True)
            )

        async def finish(done: ChatStream) -> tuple[UnifiedMetadata, Usage | None]:
            metadata.generation_ms = round((self._clock.monotonic() - started) * 1000, 3)
            metadata.citations = citations_in(done.content, retrieved.context.documents)
            if done.finish_reason is not None:  # a cut answer is no turn to remember
                await self._remember(principal, request, conversation.query, done.content, metadata)
            self._close(metadata, budget)
            return metadata, done.usage

        return UnifiedStream(retrieved.context, generate, finish)

"""The composition root: the only module that wires adapters to use-cases."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from dependency_injector import containers, providers
from httpx_aiohttp import AiohttpTransport

from adapters.documents.file_reader import SniffingFileReader
from adapters.http.services import Services
from adapters.inference.http_client import UpstreamClient
from adapters.inference.keepalive import KeepAliveTransport
from adapters.inference.llama_embedded import EmbeddedLlamaChatModel, LlamaPromptCounter
from adapters.inference.llama_server import (
    EMBEDDED_MODEL_NAME,
    LlamaCppServerProcess,
    locate_smollm2,
)
from adapters.inference.openai_compatible import OpenAICompatibleChatModel
from adapters.inference.openai_responses import OpenAIResponsesUpstream
from adapters.inference.openai_wire import api_base
from adapters.inference.resilience import ResilienceOptions
from adapters.inference.resilient_chat_model import ResilientChatModel
from adapters.telemetry.audit import StructlogAuditLog
from adapters.telemetry.metrics import RequestMetrics
from application.access import AdmissionControl, KeyManagement, RequestLimits, TierPolicy
from application.chat_completions import ChatCompletions
from application.check_health import CheckHealth
from application.embeddings import CreateEmbeddings
from application.fair_embedder import FairEmbedder
from application.knowledge_base import KnowledgeBase
from application.memories import Memories, MemoryWriter
from application.model_router import ModelRouter
from application.protocols.client_context import ClientContext
from application.unified_chat import ChatLimits, UnifiedChat
from domain.chat import SEED_DEFAULT_MODEL
from domain.chunking import ChunkSize, chunk_text
from domain.circuit import CircuitBreaker
from domain.documents import SearchMode
from domain.errors import BackendUnavailable, ConfigurationError
from domain.keys import KeyRing
from domain.limits import RateLimit
from domain.memory import DecayPolicy
from domain.principal import Tier
from domain.routing import RoutingTable
from gateway import __version__
from gateway.clock import SystemClock
from gateway.settings import Settings
from ports.chat_model import ChatModel
from ports.document_index import DocumentIndex
from ports.embedder import Embedder
from ports.health import HealthProbe
from ports.key_store import KeyStore
from ports.memory_queue import MemoryQueue
from ports.memory_store import MemoryStore
from ports.rate_limiter import RateLimiter
from ports.recent_turns import RecentTurns
from ports.response_store import ResponseStore
from ports.usage_history import UsageHistory

log = logging.getLogger("gateway")


async def tracing(settings: Settings) -> AsyncIterator[Any]:
    """OpenTelemetry (GATEWAY_TRACING), or None: then nothing is traced or paid for."""
    if not settings.tracing:
        yield None
        return
    from adapters.telemetry.tracing import OpenTelemetryTracing

    tracer = OpenTelemetryTracing.from_environment(__version__)
    try:
        yield tracer
    finally:
        tracer.shutdown()


def request_metrics(settings: Settings) -> RequestMetrics:
    """With tracing on, the chat's stage timings also reach the request's trace."""
    if not settings.tracing:
        return RequestMetrics()
    from adapters.telemetry.tracing import TracedRequestMetrics

    return TracedRequestMetrics()


async def upstream_client(settings: Settings, tracer: Any) -> AsyncIterator[httpx.AsyncClient]:
    """One pooled client for every inference upstream, under httpx's API: plain-HTTP
    upstreams (MAX Serve, llama.cpp, vLLM next to the gateway) on the lean keep-alive
    transport, TLS and proxied ones on aiohttp's pool (httpx's own pool does not hold up
    under concurrency)."""
    limits = httpx.Limits(max_connections=settings.upstream_max_connections, keepalive_expiry=60.0)
    # An HTTP proxy in the environment keeps plain HTTP on the general transport too.
    plain = (
        None
        if "http" in urllib.request.getproxies()
        else KeepAliveTransport(
            max_connections=settings.upstream_max_connections, keepalive_expiry=60.0
        )
    )
    timeout = httpx.Timeout(
        settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
    )
    # With tracing on, every upstream request carries the trace context (traceparent).
    hooks = {"request": [tracer.inject_trace_context]} if tracer is not None else None
    client = UpstreamClient(
        transport=AiohttpTransport(limits=limits),
        mounts={"http://": plain} if plain is not None else None,
        timeout=timeout,
        event_hooks=hooks,
    )
    try:
        yield client
    finally:
        await client.aclose()


def resilience(settings: Settings, telemetry: RequestMetrics) -> ResilienceOptions:
    """Retry and circuit-breaker options for one upstream (a breaker of its own)."""
    return {
        "breaker": CircuitBreaker(settings.circuit_failures, settings.circuit_cooldown_s),
        "retries": settings.upstream_retries,
        "telemetry": telemetry,
    }


async def chat_models(
    settings: Settings, client: httpx.AsyncClient, telemetry: RequestMetrics
) -> AsyncIterator[list[ChatModel]]:
    """The embedded model (a supervised llama.cpp server) or the configured upstreams."""
    if settings.embedded_inference:
        model_path = (
            settings.data_path.joinpath(settings.embedded_model_path)
            if settings.embedded_model_path
            else locate_smollm2()
        )
        server = LlamaCppServerProcess(
            model_path,
            log_path=settings.data_path / "logs" / "embedded-model.log",
            context=settings.embedded_context,
            threads=settings.embedded_threads,
            startup_timeout_s=settings.embedded_startup_timeout_s,
        )
        await server.start()
        try:
            inner = ResilientChatModel(
                OpenAICompatibleChatModel(
                    server.base_url,
                    client,
                    name="embedded",
                    health_name="embedded_model",
                    plain_messages=True,
                    timeout_s=settings.upstream_timeout_s,
                    telemetry=telemetry,
                ),
                # One generation at a time (llama.cpp's own), the queue waiting its turn.
                concurrency=1,
                max_in_flight=1 + settings.embedded_queue,
                timeout_s=settings.upstream_timeout_s,
                **resilience(settings, telemetry),
            )
            yield [
                EmbeddedLlamaChatModel(
                    inner, LlamaPromptCounter(model_path), server,
                    timeout_s=settings.upstream_timeout_s,
                )
            ]  # fmt: skip
        finally:
            await server.stop()
        return
    urls = list(
        dict.fromkeys(
            [*settings.upstream_urls, *(u for us in settings.model_map.values() for u in us)]
        )
    )
    yield [
        ResilientChatModel(
            OpenAICompatibleChatModel(
                url,
                client,
                health_name="max_serve" if i == 0 else f"max_serve_{i + 1}",
                api_key=settings.max_serve_api_key or None,
                timeout_s=settings.upstream_timeout_s,
                telemetry=telemetry,
            ),
            timeout_s=settings.upstream_timeout_s,
            **resilience(settings, telemetry),
        )
        for i, url in enumerate(urls)
    ]


def responses_upstreams(
    settings: Settings, client: httpx.AsyncClient
) -> list[OpenAIResponsesUpstream]:
    """The upstreams whose own /v1/responses takes what needs no translation."""
    configured = {api_base(u) for u in settings.upstream_urls}
    configured |= {api_base(u) for us in settings.model_map.values() for u in us}
    upstreams = []
    for url in settings.responses_passthrough_urls:
        if api_base(url) not in configured:
            raise ConfigurationError(
                f"GATEWAY_RESPONSES_PASSTHROUGH: {url} is not an upstream of MAX_SERVE_URL "
                "or GATEWAY_MODEL_MAP"
            )
        upstreams.append(
            OpenAIResponsesUpstream(
                url, client, api_key=settings.max_serve_api_key or None,
                timeout_s=settings.upstream_timeout_s,
            )
        )  # fmt: skip
    return upstreams


async def embedder(
    settings: Settings, client: httpx.AsyncClient, telemetry: RequestMetrics
) -> AsyncIterator[Embedder]:
    """The embedded MiniLM (ONNX), or EMBEDDINGS_URL (with retries and a breaker)."""
    if not settings.embeddings_url:
        from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder

        local = OnnxMiniLMEmbedder(
            intra_op_threads=settings.embedder_threads,
            query_threads=settings.embedder_query_threads,
        )
        try:
            yield local
        finally:
            local.close()
        return
    from adapters.inference.openai_embedder import OpenAICompatibleEmbedder
    from adapters.inference.resilient_embedder import ResilientEmbedder

    remote = OpenAICompatibleEmbedder(
        settings.embeddings_url,
        client,
        model=settings.embeddings_model,
        api_key=settings.embeddings_api_key or None,
        dimension=settings.embeddings_dimension or None,
        query_prefix=settings.embeddings_query_prefix,
        document_prefix=settings.embeddings_document_prefix,
        batch_size=settings.embeddings_batch,
    )
    if not settings.embeddings_dimension:
        try:
            await remote.probe_dimension()
        except BackendUnavailable as exc:
            raise ConfigurationError(
                f"cannot learn the vector size from EMBEDDINGS_URL ({exc.message}); start it "
                "first or set GATEWAY_EMBEDDINGS_DIMENSION"
            ) from None
    yield ResilientEmbedder(remote, name=remote.name, **resilience(settings, telemetry))


async def qdrant_client(settings: Settings) -> AsyncIterator[Any]:
    """QDRANT_URL's client, or None for the embedded Qdrant Edge shards."""
    if not settings.qdrant_url:
        yield None
        return
    from qdrant_client import AsyncQdrantClient

    client = AsyncQdrantClient(
        url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=5
    )
    try:
        yield client
    finally:
        await client.close()


async def document_index(
    settings: Settings, qdrant: Any, embedder: Embedder
) -> AsyncIterator[DocumentIndex]:
    if qdrant is not None:
        from adapters.vector.qdrant_index import QdrantServerIndex

        yield QdrantServerIndex(qdrant, embedder.dimension)
        return
    from adapters.vector.qdrant_index import QdrantEdgeIndex

    index = QdrantEdgeIndex(settings.data_path / "qdrant" / "documents", embedder.dimension)
    try:
        yield index
    finally:
        await index.close()


async def memory_store(
    settings: Settings, qdrant: Any, embedder: Embedder
) -> AsyncIterator[MemoryStore]:
    decay = DecayPolicy(half_life_s=settings.memory_half_life_days * 86_400)
    if settings.memory_backend == "mem0":
        mem0 = mem0_store(settings, embedder, decay)
        try:
            yield mem0
        finally:
            await mem0.close()
        return
    if qdrant is not None:
        from adapters.memory.qdrant_memory import QdrantServerMemoryStore

        yield QdrantServerMemoryStore(qdrant, embedder.dimension, decay=decay)
        return
    from adapters.memory.qdrant_memory import QdrantEdgeMemoryStore

    store = QdrantEdgeMemoryStore(
        settings.data_path / "qdrant" / "memories", embedder.dimension, decay=decay
    )
    try:
        yield store
    finally:
        await store.close()


def mem0_store(settings: Settings, embedder: Embedder, decay: DecayPolicy) -> Any:
    """Mem0 (the ``[mem0]`` extra) in a Qdrant collection of its own: under the data
    directory, or on QDRANT_URL's server; its fact extraction on the first upstream."""
    try:
        from adapters.memory.mem0_store import Mem0MemoryStore
    except ImportError as exc:
        raise ConfigurationError(
            f"GATEWAY_MEMORY_BACKEND=mem0 needs the [mem0] extra ({exc.name} is missing): "
            "scripts/setup.sh --dev, or pip install -e '.[mem0]'"
        ) from None
    upstreams = settings.upstream_urls
    if settings.mem0_extraction and not upstreams:
        raise ConfigurationError("GATEWAY_MEM0_EXTRACTION needs MAX_SERVE_URL (its model)")
    return Mem0MemoryStore(
        settings.data_path / "mem0",
        embedder,
        extraction=settings.mem0_extraction,
        llm_base_url=api_base(upstreams[0]) if upstreams else None,
        llm_model=settings.default_model or None,
        llm_api_key=settings.max_serve_api_key or None,
        qdrant_url=settings.qdrant_url or None,
        qdrant_api_key=settings.qdrant_api_key or None,
        decay=decay,
    )


async def redis_client(settings: Settings) -> AsyncIterator[Any]:
    """REDIS_URL's client (shared by the queue, short-term context, limits and keys),
    or None when everything stays in process."""
    if not settings.redis_url:
        yield None
        return
    from redis.asyncio import BlockingConnectionPool, Redis

    # A blocking pool: under bursts, commands wait for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=256, timeout=5, socket_timeout=5,
        socket_connect_timeout=2,
    )  # fmt: skip
    redis = Redis(connection_pool=pool)
    try:
        yield redis
    finally:
        await redis.aclose()


def memory_queue(settings: Settings, redis: Any) -> MemoryQueue:
    """A Redis stream (durable) with REDIS_URL, else an in-process queue."""
    if redis is None:
        from adapters.memory.in_process_queue import InProcessMemoryQueue

        return InProcessMemoryQueue(settings.memory_queue_size)
    from adapters.memory.redis_stream_queue import RedisStreamMemoryQueue

    return RedisStreamMemoryQueue(redis)


def recent_turns(settings: Settings, redis: Any) -> RecentTurns | None:
    if not settings.recent_turns:
        return None
    from adapters.memory.recent_turns import InProcessRecentTurns, RedisRecentTurns

    if redis is None:
        return InProcessRecentTurns(settings.recent_turns, settings.recent_ttl_s)
    return RedisRecentTurns(redis, turns=settings.recent_turns, ttl_s=settings.recent_ttl_s)


def response_store(settings: Settings, redis: Any) -> ResponseStore:
    """/v1/responses' stored responses: in Redis with REDIS_URL, else in process."""
    from adapters.responses.stores import InProcessResponseStore, RedisResponseStore

    if redis is None:
        return InProcessResponseStore(settings.responses_ttl_s, settings.responses_max)
    return RedisResponseStore(redis, ttl_s=settings.responses_ttl_s)


async def memory_writer(
    store: MemoryStore, queue: MemoryQueue, fair: FairEmbedder
) -> AsyncIterator[MemoryWriter]:
    """The background writer: runs for the app's lifetime; at shutdown it stores what
    is still queued (bounded) before the stores close."""
    writer = MemoryWriter(store, queue, fair.embedder, fair=fair)
    task = asyncio.create_task(writer.run(), name="memory-writer")
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await writer.flush(timeout_s=10)
        except (TimeoutError, BackendUnavailable) as exc:
            log.warning("memory queue not empty at shutdown (%r); the turns stay queued", exc)


def tier_policies(settings: Settings) -> dict[Tier, TierPolicy]:
    return {
        Tier.parse(name): TierPolicy(
            RateLimit(limits.requests_per_minute or 0, limits.tokens_per_minute or 0),
            max_tokens_cap=limits.max_tokens or 0,
            max_n=limits.max_n or 0,
        )
        for name, limits in settings.tiers().items()
    }


def rate_limiter(redis: Any) -> RateLimiter:
    """Shared by every instance through Redis; in process otherwise."""
    if redis is None:
        from adapters.limits.in_process_limiter import InProcessRateLimiter

        return InProcessRateLimiter()
    from adapters.limits.redis_limiter import RedisRateLimiter

    return RedisRateLimiter(redis)


async def usage_history(redis: Any) -> AsyncIterator[UsageHistory]:
    """Each key's requests and tokens over time: in Redis (every instance's, flushed
    every second by a background task and once more at shutdown), or in process."""
    if redis is None:
        from adapters.limits.in_process_usage_history import InProcessUsageHistory

        yield InProcessUsageHistory()
        return
    from adapters.limits.redis_usage_history import RedisUsageHistory

    history = RedisUsageHistory(redis)
    task = asyncio.create_task(history.run(), name="usage-history-flush")
    try:
        yield history
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await history.flush()
        except BackendUnavailable as exc:
            log.warning("usage history not flushed at shutdown: %s", exc.message)


async def key_store(settings: Settings, redis: Any) -> AsyncIterator[KeyStore]:
    """Managed keys, hashed: in Redis, or a local file (one process) without it."""
    if redis is not None:
        from adapters.limits.redis_key_store import RedisKeyStore

        yield RedisKeyStore(redis)
        return
    from adapters.limits.file_key_store import FileKeyStore

    store = FileKeyStore(settings.data_path / "keys.json")
    await store.load()
    try:
        yield store
    finally:
        await store.close()


def health_probes(models: list[ChatModel], *others: HealthProbe) -> list[HealthProbe]:
    return [*models, *others]


def routing_table(settings: Settings) -> RoutingTable:
    default = settings.default_model or (
        EMBEDDED_MODEL_NAME if settings.embedded_inference else None
    )
    aliases: dict[str, str | None] = {SEED_DEFAULT_MODEL: None, **settings.model_aliases}
    return RoutingTable(default_model=default, aliases=aliases)


def model_router(settings: Settings, upstreams: list[ChatModel], clock: SystemClock) -> ModelRouter:
    model_map = {m: [api_base(u) for u in urls] for m, urls in settings.model_map.items()}
    return ModelRouter(
        upstreams,
        routing_table(settings),
        clock,
        model_map=model_map or None,
        cache_ttl_s=settings.models_cache_ttl_s,
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    request_metrics = providers.Singleton(request_metrics, settings)
    keyring = providers.Singleton(
        lambda s: KeyRing.from_config(s.api_keys, production=s.production), settings
    )

    tracing = providers.Resource(tracing, settings)
    http_client = providers.Resource(upstream_client, settings, tracing)
    chat_models = providers.Resource(chat_models, settings, http_client, request_metrics)

    embedder = providers.Resource(embedder, settings, http_client, request_metrics)
    qdrant_client = providers.Resource(qdrant_client, settings)
    document_index = providers.Resource(document_index, settings, qdrant_client, embedder)
    memory_store = providers.Resource(memory_store, settings, qdrant_client, embedder)
    redis_client = providers.Resource(redis_client, settings)
    memory_queue = providers.Singleton(memory_queue, settings, redis_client)
    recent_turns = providers.Singleton(recent_turns, settings, redis_client)
    # One for the process: its round-robin is across everything that embeds documents.
    fair_embedder = providers.Singleton(
        lambda s, e: FairEmbedder(e, slice_size=s.embedder_fair_slice), settings, embedder
    )
    memory_writer = providers.Resource(memory_writer, memory_store, memory_queue, fair_embedder)

    model_router = providers.Singleton(model_router, settings, chat_models, clock)
    chat_completions = providers.Singleton(
        ChatCompletions,
        model_router,
        request_metrics,
        providers.Callable(responses_upstreams, settings, http_client),
    )
    knowledge_base = providers.Singleton(
        lambda s, e, i, f: KnowledgeBase(
            e,
            i,
            functools.partial(
                chunk_text, max_tokens=s.chunk_tokens, overlap_tokens=s.chunk_overlap
            ),
            max_document_chars=s.max_document_bytes,
            max_chunks=s.max_document_chunks,
            fair=f,
            threshold=s.rag_threshold or None,
            mode=SearchMode(s.rag_mode),
            reader=SniffingFileReader(),
            chunk_size=ChunkSize(s.chunk_tokens, s.chunk_overlap),
        ),
        settings,
        embedder,
        document_index,
        fair_embedder,
    )
    memories = providers.Singleton(
        Memories, memory_store, memory_queue, embedder, clock, recent_turns, fair=fair_embedder
    )
    create_embeddings = providers.Singleton(
        lambda s, e, f: CreateEmbeddings(
            e,
            [a.strip() for a in s.embeddings_aliases.split(",")],
            max_inputs=s.embeddings_max_inputs,
            max_tokens=s.embeddings_max_tokens,
            fair=f,
        ),
        settings,
        embedder,
        fair_embedder,
    )
    rate_limiter = providers.Singleton(rate_limiter, redis_client)
    key_store = providers.Resource(key_store, settings, redis_client)
    audit_log = providers.Singleton(StructlogAuditLog)
    usage_history = providers.Resource(usage_history, redis_client)
    key_management = providers.Singleton(
        KeyManagement, keyring, key_store, clock, audit_log, usage=usage_history
    )
    admission = providers.Singleton(
        lambda s, limiter, keys, clock, usage: AdmissionControl(
            limiter, keys, clock, tier_policies(s),
            RequestLimits(s.max_messages, s.max_content_chars), usage=usage,
        ),
        settings, rate_limiter, key_store, clock, usage_history,
    )  # fmt: skip
    unified_chat = providers.Singleton(
        lambda s, c, e, kb, m, clock: UnifiedChat(
            c, e, kb, m, clock,
            ChatLimits(
                default_budget_ms=s.chat_budget_ms,
                max_budget_ms=s.chat_max_budget_ms,
                retrieval_share=s.retrieval_share,
                context_tokens=s.context_tokens,
                recent_turns=s.recent_turns,
                memory_min_similarity=s.memory_min_similarity,
            ),
        ),
        settings, chat_completions, embedder, knowledge_base, memories, clock,
    )  # fmt: skip
    response_store = providers.Singleton(response_store, settings, redis_client)
    client_context = providers.Singleton(
        lambda s, unified, memories, clock: ClientContext(
            unified, memories, clock,
            budget_ms=s.chat_budget_ms, retrieval_share=s.retrieval_share,
        ),
        settings, unified_chat, memories, clock,
    )  # fmt: skip
    check_health = providers.Singleton(
        lambda models, *probes: CheckHealth(health_probes(models, *probes), __version__),
        chat_models, embedder, document_index, memory_store, memory_queue,
    )  # fmt: skip


async def _resolve(provider: Any) -> Any:
    value = provider()
    return await value if inspect.isawaitable(value) else value


@asynccontextmanager
async def open_services(container: Container) -> AsyncIterator[Services]:
    """Start the container's resources; close them (in reverse) when the app stops."""
    started = container.init_resources()
    if inspect.isawaitable(started):
        await started
    try:
        tracer = await _resolve(container.tracing)
        unified_chat: UnifiedChat = await _resolve(container.unified_chat)
        warm = await unified_chat.warm_up()
        structlog.get_logger("gateway").info(
            "retrieval warmed up",
            stages_ms=warm.timings_ms,
            degraded=[{"stage": d.stage, "reason": d.reason} for d in warm.degraded],
        )
        services = Services(
            chat_completions=await _resolve(container.chat_completions),
            model_router=await _resolve(container.model_router),
            check_health=await _resolve(container.check_health),
            request_metrics=await _resolve(container.request_metrics),
            knowledge_base=await _resolve(container.knowledge_base),
            memories=await _resolve(container.memories),
            unified_chat=unified_chat,
            create_embeddings=await _resolve(container.create_embeddings),
            admission=await _resolve(container.admission),
            key_management=await _resolve(container.key_management),
            trace_requests=tracer.middleware if tracer is not None else None,
            response_store=await _resolve(container.response_store),
            client_context=await _resolve(container.client_context),
        )
        # What start-up built lives as long as the process: out of the collector's
        # way, each collection walks only what requests allocate (-6% CPU a request).
        gc.freeze()
        yield services
    finally:
        gc.unfreeze()  # an app built again in this process (tests) can be collected
        stopped = container.shutdown_resources()
        if inspect.isawaitable(stopped):
            await stopped

"""The composition root: the only module that wires adapters to use-cases."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import operator
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from dependency_injector import containers, providers
from httpx_aiohttp import AiohttpTransport

from adapters.documents.file_reader import SniffingFileReader
from adapters.http.asgi_types import ASGIApp
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
from ports.clock import Clock
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


# --- inference --------------------------------------------------------------------------


async def embedded_chat_model(
    settings: Settings, client: httpx.AsyncClient, telemetry: RequestMetrics
) -> AsyncIterator[list[ChatModel]]:
    """The embedded model: a supervised llama.cpp server, one generation at a time."""
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


def upstream_chat_models(
    settings: Settings, client: httpx.AsyncClient, telemetry: RequestMetrics
) -> list[ChatModel]:
    """MAX_SERVE_URL's and GATEWAY_MODEL_MAP's upstreams, each with a breaker of its own."""
    urls = list(
        dict.fromkeys(
            [*settings.upstream_urls, *(u for us in settings.model_map.values() for u in us)]
        )
    )
    return [
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


async def onnx_embedder(settings: Settings) -> AsyncIterator[Embedder]:
    """The embedded all-MiniLM-L6-v2 (int8 ONNX), in process."""
    from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder

    local = OnnxMiniLMEmbedder(
        intra_op_threads=settings.embedder_threads,
        query_threads=settings.embedder_query_threads,
    )
    try:
        yield local
    finally:
        local.close()


async def remote_embedder(
    settings: Settings, client: httpx.AsyncClient, telemetry: RequestMetrics
) -> Embedder:
    """EMBEDDINGS_URL, with retries and a breaker; its vector size learnt if not given."""
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
    return ResilientEmbedder(remote, name=remote.name, **resilience(settings, telemetry))


def routing_table(settings: Settings) -> RoutingTable:
    default = settings.default_model or (
        EMBEDDED_MODEL_NAME if settings.embedded_inference else None
    )
    aliases: dict[str, str | None] = {SEED_DEFAULT_MODEL: None, **settings.model_aliases}
    return RoutingTable(default_model=default, aliases=aliases)


def model_router(settings: Settings, upstreams: list[ChatModel], clock: Clock) -> ModelRouter:
    model_map = {m: [api_base(u) for u in urls] for m, urls in settings.model_map.items()}
    return ModelRouter(
        upstreams,
        routing_table(settings),
        clock,
        model_map=model_map or None,
        cache_ttl_s=settings.models_cache_ttl_s,
    )


# --- storage ----------------------------------------------------------------------------


async def qdrant_client(settings: Settings) -> AsyncIterator[Any]:
    """QDRANT_URL's client (documents and memories share it)."""
    from qdrant_client import AsyncQdrantClient

    client = AsyncQdrantClient(
        url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=5
    )
    try:
        yield client
    finally:
        await client.close()


async def redis_client(settings: Settings) -> AsyncIterator[Any]:
    """REDIS_URL's client, shared by the queue, short-term context, limits and keys."""
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


async def edge_document_index(
    settings: Settings, embedder: Embedder
) -> AsyncIterator[DocumentIndex]:
    from adapters.vector.qdrant_index import QdrantEdgeIndex

    index = QdrantEdgeIndex(settings.data_path / "qdrant" / "documents", embedder.dimension)
    try:
        yield index
    finally:
        await index.close()


def server_document_index(qdrant: Any, embedder: Embedder) -> DocumentIndex:
    from adapters.vector.qdrant_index import QdrantServerIndex

    return QdrantServerIndex(qdrant, embedder.dimension)


def decay_policy(settings: Settings) -> DecayPolicy:
    return DecayPolicy(half_life_s=settings.memory_half_life_days * 86_400)


async def edge_memory_store(
    settings: Settings, embedder: Embedder, decay: DecayPolicy
) -> AsyncIterator[MemoryStore]:
    from adapters.memory.qdrant_memory import QdrantEdgeMemoryStore

    store = QdrantEdgeMemoryStore(
        settings.data_path / "qdrant" / "memories", embedder.dimension, decay=decay
    )
    try:
        yield store
    finally:
        await store.close()


def server_memory_store(qdrant: Any, embedder: Embedder, decay: DecayPolicy) -> MemoryStore:
    from adapters.memory.qdrant_memory import QdrantServerMemoryStore

    return QdrantServerMemoryStore(qdrant, embedder.dimension, decay=decay)


async def mem0_store(
    settings: Settings, embedder: Embedder, decay: DecayPolicy
) -> AsyncIterator[MemoryStore]:
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
    store = Mem0MemoryStore(
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
    try:
        yield store
    finally:
        await store.close()


def local_memory_queue(settings: Settings) -> MemoryQueue:
    """In process: not durable across a crash; flushed on a graceful shutdown."""
    from adapters.memory.in_process_queue import InProcessMemoryQueue

    return InProcessMemoryQueue(settings.memory_queue_size)


def redis_memory_queue(redis: Any) -> MemoryQueue:
    """A Redis stream: durable, shared by every instance."""
    from adapters.memory.redis_stream_queue import RedisStreamMemoryQueue

    return RedisStreamMemoryQueue(redis)


def local_recent_turns(settings: Settings) -> RecentTurns:
    from adapters.memory.recent_turns import InProcessRecentTurns

    return InProcessRecentTurns(settings.recent_turns, settings.recent_ttl_s)


def redis_recent_turns(settings: Settings, redis: Any) -> RecentTurns:
    from adapters.memory.recent_turns import RedisRecentTurns

    return RedisRecentTurns(redis, turns=settings.recent_turns, ttl_s=settings.recent_ttl_s)


def local_response_store(settings: Settings) -> ResponseStore:
    from adapters.responses.stores import InProcessResponseStore

    return InProcessResponseStore(settings.responses_ttl_s, settings.responses_max)


def redis_response_store(settings: Settings, redis: Any) -> ResponseStore:
    from adapters.responses.stores import RedisResponseStore

    return RedisResponseStore(redis, ttl_s=settings.responses_ttl_s)


# --- access -----------------------------------------------------------------------------


def tier_policies(settings: Settings) -> dict[Tier, TierPolicy]:
    return {
        Tier.parse(name): TierPolicy(
            RateLimit(limits.requests_per_minute or 0, limits.tokens_per_minute or 0),
            max_tokens_cap=limits.max_tokens or 0,
            max_n=limits.max_n or 0,
        )
        for name, limits in settings.tiers().items()
    }


def local_rate_limiter() -> RateLimiter:
    from adapters.limits.in_process_limiter import InProcessRateLimiter

    return InProcessRateLimiter()


def redis_rate_limiter(redis: Any) -> RateLimiter:
    """Shared by every instance."""
    from adapters.limits.redis_limiter import RedisRateLimiter

    return RedisRateLimiter(redis)


async def file_key_store(settings: Settings) -> AsyncIterator[KeyStore]:
    """Managed keys, hashed, in a local file (one process)."""
    from adapters.limits.file_key_store import FileKeyStore

    store = FileKeyStore(settings.data_path / "keys.json")
    await store.load()
    try:
        yield store
    finally:
        await store.close()


def redis_key_store(redis: Any) -> KeyStore:
    from adapters.limits.redis_key_store import RedisKeyStore

    return RedisKeyStore(redis)


def local_usage_history() -> UsageHistory:
    from adapters.limits.in_process_usage_history import InProcessUsageHistory

    return InProcessUsageHistory()


async def redis_usage_history(redis: Any) -> AsyncIterator[UsageHistory]:
    """Every instance's requests and tokens, flushed every second by a background task
    and once more at shutdown."""
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


# --- use-cases --------------------------------------------------------------------------


def knowledge_base(
    settings: Settings, embedder: Embedder, index: DocumentIndex, fair: FairEmbedder
) -> KnowledgeBase:
    return KnowledgeBase(
        embedder,
        index,
        functools.partial(
            chunk_text, max_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap
        ),
        max_document_chars=settings.max_document_bytes,
        max_chunks=settings.max_document_chunks,
        fair=fair,
        threshold=settings.rag_threshold or None,
        mode=SearchMode(settings.rag_mode),
        reader=SniffingFileReader(),
        chunk_size=ChunkSize(settings.chunk_tokens, settings.chunk_overlap),
    )


def chat_limits(settings: Settings) -> ChatLimits:
    return ChatLimits(
        default_budget_ms=settings.chat_budget_ms,
        max_budget_ms=settings.chat_max_budget_ms,
        retrieval_share=settings.retrieval_share,
        context_tokens=settings.context_tokens,
        recent_turns=settings.recent_turns,
        memory_min_similarity=settings.memory_min_similarity,
    )


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


def check_health(models: list[ChatModel], *others: HealthProbe) -> CheckHealth:
    return CheckHealth([*models, *others], __version__)


# --- the containers: one per room, each choice of adapter a Selector on a setting -------


def _choice(name: str) -> Callable[[Settings], str]:
    return operator.attrgetter(name)


class Infrastructure(containers.DeclarativeContainer):
    """Clients and telemetry every room shares. Only what a chosen adapter uses starts."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)
    request_metrics = providers.Singleton(request_metrics, settings)
    tracing = providers.Resource(tracing, settings)
    http_client = providers.Resource(upstream_client, settings, tracing)
    redis = providers.Resource(redis_client, settings)
    qdrant = providers.Resource(qdrant_client, settings)


class Inference(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    infrastructure = providers.DependenciesContainer()

    chat_models = providers.Selector(
        providers.Callable(_choice("inference_backend"), settings),
        embedded=providers.Resource(
            embedded_chat_model, settings, infrastructure.http_client,
            infrastructure.request_metrics,
        ),
        upstreams=providers.Singleton(
            upstream_chat_models, settings, infrastructure.http_client,
            infrastructure.request_metrics,
        ),
    )  # fmt: skip
    embedder = providers.Selector(
        providers.Callable(_choice("embedder_backend"), settings),
        onnx=providers.Resource(onnx_embedder, settings),
        remote=providers.Singleton(
            remote_embedder, settings, infrastructure.http_client, infrastructure.request_metrics
        ),
    )
    # One for the process: its round-robin is across everything that embeds documents.
    fair_embedder = providers.Singleton(
        FairEmbedder, embedder, slice_size=settings.provided.embedder_fair_slice
    )
    model_router = providers.Singleton(model_router, settings, chat_models, infrastructure.clock)
    chat_completions = providers.Singleton(
        ChatCompletions,
        model_router,
        infrastructure.request_metrics,
        providers.Callable(responses_upstreams, settings, infrastructure.http_client),
    )


class Storage(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    infrastructure = providers.DependenciesContainer()
    inference = providers.DependenciesContainer()

    decay = providers.Singleton(decay_policy, settings)
    document_index = providers.Selector(
        providers.Callable(_choice("vector_backend"), settings),
        edge=providers.Resource(edge_document_index, settings, inference.embedder),
        server=providers.Singleton(
            server_document_index, infrastructure.qdrant, inference.embedder
        ),
    )
    memory_store = providers.Selector(
        providers.Callable(_choice("memory_store_backend"), settings),
        edge=providers.Resource(edge_memory_store, settings, inference.embedder, decay),
        server=providers.Singleton(
            server_memory_store, infrastructure.qdrant, inference.embedder, decay
        ),
        mem0=providers.Resource(mem0_store, settings, inference.embedder, decay),
    )
    memory_queue = providers.Selector(
        providers.Callable(_choice("state_backend"), settings),
        local=providers.Singleton(local_memory_queue, settings),
        redis=providers.Singleton(redis_memory_queue, infrastructure.redis),
    )
    recent_turns = providers.Selector(
        providers.Callable(_choice("recent_turns_backend"), settings),
        off=providers.Object(None),
        local=providers.Singleton(local_recent_turns, settings),
        redis=providers.Singleton(redis_recent_turns, settings, infrastructure.redis),
    )
    response_store = providers.Selector(
        providers.Callable(_choice("state_backend"), settings),
        local=providers.Singleton(local_response_store, settings),
        redis=providers.Singleton(redis_response_store, settings, infrastructure.redis),
    )


class Access(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    infrastructure = providers.DependenciesContainer()

    keyring = providers.Singleton(
        KeyRing.from_config,
        settings.provided.api_keys,
        production=settings.provided.production,
    )
    rate_limiter = providers.Selector(
        providers.Callable(_choice("state_backend"), settings),
        local=providers.Singleton(local_rate_limiter),
        redis=providers.Singleton(redis_rate_limiter, infrastructure.redis),
    )
    key_store = providers.Selector(
        providers.Callable(_choice("state_backend"), settings),
        local=providers.Resource(file_key_store, settings),
        redis=providers.Singleton(redis_key_store, infrastructure.redis),
    )
    usage_history = providers.Selector(
        providers.Callable(_choice("state_backend"), settings),
        local=providers.Singleton(local_usage_history),
        redis=providers.Resource(redis_usage_history, infrastructure.redis),
    )
    audit_log = providers.Singleton(StructlogAuditLog)
    key_management = providers.Singleton(
        KeyManagement, keyring, key_store, infrastructure.clock, audit_log, usage=usage_history
    )
    admission = providers.Singleton(
        AdmissionControl,
        rate_limiter,
        key_store,
        infrastructure.clock,
        providers.Callable(tier_policies, settings),
        providers.Factory(
            RequestLimits, settings.provided.max_messages, settings.provided.max_content_chars
        ),
        usage=usage_history,
    )


class UseCases(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    infrastructure = providers.DependenciesContainer()
    inference = providers.DependenciesContainer()
    storage = providers.DependenciesContainer()

    knowledge_base = providers.Singleton(
        knowledge_base, settings, inference.embedder, storage.document_index,
        inference.fair_embedder,
    )  # fmt: skip
    memories = providers.Singleton(
        Memories, storage.memory_store, storage.memory_queue, inference.embedder,
        infrastructure.clock, storage.recent_turns, fair=inference.fair_embedder,
    )  # fmt: skip
    memory_writer = providers.Resource(
        memory_writer, storage.memory_store, storage.memory_queue, inference.fair_embedder
    )
    create_embeddings = providers.Singleton(
        CreateEmbeddings,
        inference.embedder,
        providers.Callable(
            lambda aliases: [a.strip() for a in aliases.split(",")],
            settings.provided.embeddings_aliases,
        ),
        max_inputs=settings.provided.embeddings_max_inputs,
        max_tokens=settings.provided.embeddings_max_tokens,
        fair=inference.fair_embedder,
    )
    unified_chat = providers.Singleton(
        UnifiedChat, inference.chat_completions, inference.embedder, knowledge_base, memories,
        infrastructure.clock, providers.Callable(chat_limits, settings),
    )  # fmt: skip
    client_context = providers.Singleton(
        ClientContext, unified_chat, memories, infrastructure.clock,
        budget_ms=settings.provided.chat_budget_ms,
        retrieval_share=settings.provided.retrieval_share,
    )  # fmt: skip
    check_health = providers.Singleton(
        check_health, inference.chat_models, inference.embedder, storage.document_index,
        storage.memory_store, storage.memory_queue,
    )  # fmt: skip


def _trace_requests(tracer: Any) -> Callable[[ASGIApp], ASGIApp] | None:
    return tracer.middleware if tracer is not None else None


class Container(containers.DeclarativeContainer):
    """The gateway: each room a container of its own; ``services`` is what HTTP serves.
    Tests replace a part with ``container.<room>.<part>.override(...)``."""

    settings = providers.Dependency(instance_of=Settings)

    infrastructure = providers.Container(Infrastructure, settings=settings)
    inference = providers.Container(Inference, settings=settings, infrastructure=infrastructure)
    storage = providers.Container(
        Storage, settings=settings, infrastructure=infrastructure, inference=inference
    )
    access = providers.Container(Access, settings=settings, infrastructure=infrastructure)
    use_cases = providers.Container(
        UseCases, settings=settings, infrastructure=infrastructure, inference=inference,
        storage=storage,
    )  # fmt: skip

    services = providers.Singleton(
        Services,
        chat_completions=inference.chat_completions,
        model_router=inference.model_router,
        check_health=use_cases.check_health,
        request_metrics=infrastructure.request_metrics,
        knowledge_base=use_cases.knowledge_base,
        memories=use_cases.memories,
        unified_chat=use_cases.unified_chat,
        create_embeddings=use_cases.create_embeddings,
        admission=access.admission,
        key_management=access.key_management,
        trace_requests=providers.Callable(_trace_requests, infrastructure.tracing),
        response_store=storage.response_store,
        client_context=use_cases.client_context,
    )


async def _resolve(provider: Any) -> Any:
    value = provider()
    return await value if inspect.isawaitable(value) else value


@asynccontextmanager
async def open_services(container: Container) -> AsyncIterator[Services]:
    """Start what the chosen adapters need (each resource on first use) and close it, in
    reverse, when the app stops: the background writer first, the clients last."""
    try:
        services: Services = await _resolve(container.services)
        await _resolve(container.use_cases.memory_writer)
        warm = await services.unified_chat.warm_up()
        structlog.get_logger("gateway").info(
            "retrieval warmed up",
            stages_ms=warm.timings_ms,
            degraded=[{"stage": d.stage, "reason": d.reason} for d in warm.degraded],
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

"""The composition root: the only module that wires adapters to use-cases."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from dependency_injector import containers, providers
from httpx_aiohttp import AiohttpTransport

from adapters.http.app import Services
from adapters.inference.llama_embedded import EmbeddedLlamaChatModel, LlamaPromptCounter
from adapters.inference.llama_server import (
    EMBEDDED_MODEL_NAME,
    LlamaCppServerProcess,
    locate_smollm2,
)
from adapters.inference.openai_compatible import OpenAICompatibleChatModel, api_base
from adapters.telemetry.metrics import RequestMetrics
from application.chat_completions import ChatCompletions
from application.check_health import CheckHealth
from application.model_router import ModelRouter
from domain.chat import SEED_DEFAULT_MODEL
from domain.keys import KeyRing
from domain.routing import RoutingTable
from gateway import __version__
from gateway.clock import SystemClock
from gateway.settings import Settings
from ports.chat_model import ChatModel


async def upstream_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One pooled client for every inference upstream (aiohttp's pool under httpx's API:
    it holds up under concurrency where httpx's own pool does not)."""
    limits = httpx.Limits(max_connections=settings.upstream_max_connections, keepalive_expiry=60.0)
    timeout = httpx.Timeout(
        settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s
    )
    client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout)
    try:
        yield client
    finally:
        await client.aclose()


async def chat_models(
    settings: Settings, client: httpx.AsyncClient
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
            inner = OpenAICompatibleChatModel(
                server.base_url,
                client,
                name="embedded",
                health_name="embedded_model",
                max_in_flight=settings.embedded_queue,
                timeout_s=settings.upstream_timeout_s,
            )
            yield [EmbeddedLlamaChatModel(inner, LlamaPromptCounter(model_path))]
        finally:
            await server.stop()
        return
    urls = list(
        dict.fromkeys(
            [*settings.upstream_urls, *(u for us in settings.model_map.values() for u in us)]
        )
    )
    yield [
        OpenAICompatibleChatModel(
            url,
            client,
            health_name="max_serve" if i == 0 else f"max_serve_{i + 1}",
            api_key=settings.max_serve_api_key or None,
            timeout_s=settings.upstream_timeout_s,
        )
        for i, url in enumerate(urls)
    ]


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
    request_metrics = providers.Singleton(RequestMetrics)
    keyring = providers.Singleton(
        lambda s: KeyRing.from_config(s.api_keys, production=s.production), settings
    )

    http_client = providers.Resource(upstream_client, settings)
    chat_models = providers.Resource(chat_models, settings, http_client)

    model_router = providers.Singleton(model_router, settings, chat_models, clock)
    chat_completions = providers.Singleton(ChatCompletions, model_router)
    check_health = providers.Singleton(CheckHealth, chat_models, __version__)


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
        yield Services(
            chat_completions=await _resolve(container.chat_completions),
            model_router=await _resolve(container.model_router),
            check_health=await _resolve(container.check_health),
            request_metrics=await _resolve(container.request_metrics),
        )
    finally:
        stopped = container.shutdown_resources()
        if inspect.isawaitable(stopped):
            await stopped

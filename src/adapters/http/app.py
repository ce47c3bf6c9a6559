"""The Litestar application: controllers, auth, the error table, OpenAPI docs."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from adapters.http.asgi_types import ASGIApp, Message, Scope
from adapters.http.auth import BearerKeyAuthentication
from adapters.http.console import CONSOLE_HANDLERS
from adapters.http.content import JSONBodyRequest
from adapters.http.controllers.chat_completions import ChatCompletionsController
from adapters.http.controllers.completions import CompletionsController
from adapters.http.controllers.docs import DOCS_HANDLERS
from adapters.http.controllers.documents import DocumentsController
from adapters.http.controllers.embeddings import EmbeddingsController
from adapters.http.controllers.health import HealthController
from adapters.http.controllers.key_usage import KeyUsageController
from adapters.http.controllers.keys import KeysController
from adapters.http.controllers.memories import MemoriesController
from adapters.http.controllers.messages import MessagesController
from adapters.http.controllers.metrics import MetricsController
from adapters.http.controllers.models import ModelsController
from adapters.http.controllers.rag import RagController
from adapters.http.controllers.responses import ResponsesController
from adapters.http.controllers.unified_chat import UnifiedChatController
from adapters.http.errors import exception_handler
from adapters.http.observability import InFlight, RequestObservability
from adapters.http.protocol_errors import by_protocol
from adapters.http.request_bounds import RequestBounds
from adapters.http.services import Services
from adapters.http.shutdown import stop_requests_after_grace
from adapters.telemetry.metrics import RequestMetrics
from domain.principal import Principal

log = structlog.get_logger("gateway.http")


def create_app(
    *,
    services: Callable[[], AbstractAsyncContextManager[Services]],
    metrics: RequestMetrics,
    max_body_bytes: int,
    max_document_bytes: int,
    version: str,
    cors_origins: list[str] | None = None,
    shutdown_grace_s: float = 30.0,
    retry_after_s: float = 10.0,
    max_target_bytes: int = 8192,
    max_header_bytes: int = 32768,
    body_timeout_s: float = 30.0,
    upload_dir: Path | None = None,
) -> ASGIApp:
    """``services`` opens the gateway's resources for the app's lifetime and closes
    them (finishing what is in flight) at shutdown."""
    current: dict[str, Services] = {}
    # Where multipart uploads are spooled while they are ingested (removed after).
    spool = upload_dir or Path(tempfile.gettempdir()) / "gateway-uploads"
    options = OptionsAnswers()
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with services() as ready:
            current["services"] = ready
            stop_requests_after_grace(in_flight, shutdown_grace_s)
            app.state.services = ready  # for guards, which get no dependencies
            # Known once the services are up; nothing stands in the way when it is off.
            untraced = observed.app
            if ready.trace_requests is not None:
                observed.app = ready.trace_requests(untraced)
            yield
            observed.app = untraced
            # Graceful shutdown: answers in progress (streams too) finish before the
            # resources they use close; the memory queue is flushed after them.
            if not await in_flight.drained(shutdown_grace_s):
                log.warning(
                    "shutdown: %d requests still running after %.0f s",
                    in_flight.count,
                    shutdown_grace_s,
                )

    async def authenticate(secret: str) -> Principal | None:
        return await current["services"].key_management.authenticate(secret)

    def provider(name: str) -> Provide:
        def provide() -> Any:
            return getattr(current["services"], name)

        return Provide(provide, sync_to_thread=False, use_cache=True)

    def all_services() -> Services:
        return current["services"]

    app = Litestar(
        route_handlers=[
            ChatCompletionsController,
            UnifiedChatController,
            ModelsController,
            EmbeddingsController,
            RagController,
            MemoriesController,
            KeysController,
            KeyUsageController,
            # Documents (file uploads) get a body limit of their own.
            Router(
                path="/",
                route_handlers=[DocumentsController],
                request_max_body_size=max_document_bytes,
                dependencies={"upload_dir": Provide(lambda: spool, sync_to_thread=False)},
            ),
            HealthController,
            MetricsController,
            *DOCS_HANDLERS,
            CompletionsController,
            MessagesController,
            ResponsesController,
            *CONSOLE_HANDLERS,
        ],
        dependencies={
            **{f.name: provider(f.name) for f in fields(Services)},
            # All of them as one: a handler taking one dependency has it resolved without
            # the task group Litestar opens for several (the relay routes).
            "services": Provide(all_services, sync_to_thread=False, use_cache=True),
        },
        middleware=[DefineMiddleware(BearerKeyAuthentication, authenticate=authenticate)],
        # Every JSON body: a number too large for a float is named in its 400.
        request_class=JSONBodyRequest,
        exception_handlers={Exception: by_protocol(exception_handler(retry_after_s))},
        lifespan=[lifespan],
        before_send=[options.before_send],  # type: ignore[list-item]
        request_max_body_size=max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="AI Platform Gateway",
            version=version,
            description=(
                "One entry point to LLM inference (OpenAI-compatible), per-user memory and "
                "RAG. Authenticate with `Authorization: Bearer <key>`."
            ),
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        cors_config=CORSConfig(
            allow_origins=cors_origins,
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "x-api-key",
                "X-Gateway-User-Id",
                "X-Gateway-Memory",
                "X-Gateway-RAG",
            ],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-gateway-stages",
                "x-gateway-context",
                "x-gateway-degraded",
                "x-gateway-references",
                "x-gateway-citations",
                "x-gateway-memory-id",
            ],
        )
        if cors_origins
        else None,
        logging_config=None,
        debug=False,
    )
    options.learn(app)
    bounds = RequestBounds(
        max_target_bytes=max_target_bytes,
        max_header_bytes=max_header_bytes,
        body_timeout_s=body_timeout_s,
    )
    observed = RequestObservability(
        app,  # type: ignore[arg-type]
        metrics,
        in_flight,
        bounds=bounds,
        retry_after_s=retry_after_s,
    )
    return observed


class OptionsAnswers:
    """``OPTIONS`` on a route answers 204 with its ``Allow`` header, without a key (a
    browser's CORS preflight never sends one, and the methods are in the public API
    document anyway).

    Litestar adds an ``OPTIONS`` handler per route, with the guards of the route's
    controller (they need an authenticated caller it does not have: a 500), and an
    ``Allow`` computed when the route's first handler was registered (the methods of
    the handlers registered after it are missing). Both are corrected here."""

    def __init__(self) -> None:
        self._allow: dict[str, bytes] = {}

    def learn(self, app: Litestar) -> None:
        for route in app.routes:
            handlers = getattr(route, "route_handlers", ())
            self._allow[route.path_format] = ", ".join(sorted(route.methods)).encode()
            for handler in handlers:
                if set(handler.http_methods) == {"OPTIONS"} and not handler.include_in_schema:
                    handler._resolved_guards = []

    async def before_send(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        allow = self._allow.get(scope.get("path_template") or "")
        if allow is not None and message["status"] == 204:
            headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() != b"allow"]
            message["headers"] = [*headers, (b"allow", allow)]

"""What the HTTP handlers use, built by the composition root once resources are up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.http.asgi_types import ASGIApp
from adapters.telemetry.metrics import RequestMetrics
from application.access import AdmissionControl, KeyManagement
from application.chat_completions import ChatCompletions
from application.check_health import CheckHealth
from application.embeddings import CreateEmbeddings
from application.knowledge_base import KnowledgeBase
from application.memories import Memories
from application.model_router import ModelRouter
from application.protocols.client_context import ClientContext
from application.unified_chat import UnifiedChat
from ports.response_store import ResponseStore


@dataclass(frozen=True)
class Services:
    """Each field is injected into handlers by its name; ``services`` injects them all."""

    chat_completions: ChatCompletions
    model_router: ModelRouter
    check_health: CheckHealth
    request_metrics: RequestMetrics
    knowledge_base: KnowledgeBase
    memories: Memories
    unified_chat: UnifiedChat
    create_embeddings: CreateEmbeddings
    admission: AdmissionControl
    key_management: KeyManagement
    # With tracing on: wraps the app in a server span per request.
    trace_requests: Callable[[ASGIApp], ASGIApp] | None = None
    # /v1/responses' stored responses (none: nothing is stored).
    response_store: ResponseStore | None = None
    # Memory and RAG for standard clients, asked for with X-Gateway-* headers.
    client_context: ClientContext | None = None

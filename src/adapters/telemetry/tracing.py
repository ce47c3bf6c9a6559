"""OpenTelemetry tracing: the optional ``[otel]`` extra, on with GATEWAY_TRACING=true.

A server span per HTTP request, continuing the caller's W3C ``traceparent``; the
unified chat's stages as its children, laid out from the stage timings the chat
reports (the use-case knows no tracer); and the trace context injected into every
request sent to an inference or embeddings upstream. The exporter (OTLP over HTTP) and
the resource are configured by the SDK's own variables: OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_BSP_*... Nothing here runs, and no
request pays anything, while tracing is off."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.telemetry.metrics import RequestMetrics
from domain.errors import ConfigurationError
from domain.stages import Stage

try:
    from opentelemetry import context, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # the extra is optional: require_opentelemetry() names it
    _MISSING_MODULE: str | None = exc.name or "opentelemetry"
else:
    _MISSING_MODULE = None

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Module prefix → the package of the [otel] extra that provides it (longest first).
PACKAGES = (
    ("opentelemetry.exporter", "opentelemetry-exporter-otlp-proto-http"),
    ("opentelemetry.sdk", "opentelemetry-sdk"),
    ("opentelemetry", "opentelemetry-api"),
)
SERVICE_NAME = "ai-gateway"
# The chat's stage names (as the metrics receive them) → span names.
STAGE_SPANS = {
    Stage.EMBEDDING: "embedding",
    Stage.MEMORY_RETRIEVAL: "memory retrieval",
    Stage.RAG_RETRIEVAL: "rag retrieval",
    Stage.GENERATION: "generation",
    Stage.MEMORY_ENQUEUE: "memory enqueue",
}
# A degraded stage (metadata.degraded) → the stage whose span carries the error.
DEGRADED_STAGE = {
    Stage.SHORT_TERM_CONTEXT: Stage.MEMORY_RETRIEVAL,
    Stage.MEMORY_STORAGE: Stage.MEMORY_ENQUEUE,
}
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def require_opentelemetry() -> None:
    """Refuse to start tracing without the extra, naming the missing package."""
    if _MISSING_MODULE is None:
        return
    package = next(
        (p for prefix, p in PACKAGES if _MISSING_MODULE.startswith(prefix)), _MISSING_MODULE
    )
    raise ConfigurationError(
        f"GATEWAY_TRACING=true needs the package {package}, which is not installed "
        "(pip install 'ai-gateway[otel]')"
    )


@dataclass
class ChatStages:
    """One request's /v1/chat stage timings, as they are reported once the answer is
    complete (``total_latency`` spans them all and ends then)."""

    seconds: dict[str, float] = field(default_factory=dict)
    reported_ns: int = 0

    def add(self, stage: str, seconds: float) -> None:
        if not self.reported_ns:
            self.reported_ns = time.time_ns()
        self.seconds[stage] = seconds

    def layout(self) -> list[tuple[Stage, int, int]]:
        """(stage, start, end) in epoch ns of each stage that took time. The chat
        embeds the query, then retrieves memories and documents side by side, then
        generates, then queues the turn as memory, which ends the total."""
        if not self.reported_ns:
            return []

        def ns(stage: str) -> int:
            return max(0, round(self.seconds.get(stage, 0.0) * 1e9))

        end = self.reported_ns
        embedding, memory = ns(Stage.EMBEDDING), ns(Stage.MEMORY_RETRIEVAL)
        rag, generation = ns(Stage.RAG_RETRIEVAL), ns(Stage.GENERATION)
        total = ns(Stage.TOTAL_LATENCY) or embedding + max(memory, rag) + generation
        start = end - total
        retrieved = start + embedding
        generated = min(end, retrieved + max(memory, rag) + generation)
        spans = [
            (Stage.EMBEDDING, start, retrieved),
            (Stage.MEMORY_RETRIEVAL, retrieved, retrieved + memory),
            (Stage.RAG_RETRIEVAL, retrieved, retrieved + rag),
            (Stage.GENERATION, generated - generation, generated),
            (Stage.MEMORY_ENQUEUE, generated, end),
        ]
        return [(stage, s, e) for stage, s, e in spans if e > s]


# The request being traced: its stage timings are collected here (set by the middleware,
# filled by TracedRequestMetrics, in the request's context and the tasks it starts).
_CHAT_STAGES: ContextVar[ChatStages | None] = ContextVar("chat_stages", default=None)


class TracedRequestMetrics(RequestMetrics):
    """RequestMetrics that also hand each /v1/chat stage timing to the request's trace."""

    def record_stage(self, stage: str, seconds: float) -> None:
        super().record_stage(stage, seconds)
        stages = _CHAT_STAGES.get()
        if stages is not None:
            stages.add(stage, seconds)


def _trace_headers(scope: Scope) -> dict[str, str]:
    # Only the trace context is read: never the Authorization header or anything else.
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in _TRACE_HEADERS
    }


class OpenTelemetryTracing:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("ai-gateway")
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_environment(
        cls, version: str, environ: Mapping[str, str] | None = None
    ) -> OpenTelemetryTracing:
        """OTLP/HTTP export behind a batch processor, as the OTEL_* variables say."""
        require_opentelemetry()
        environ = os.environ if environ is None else environ
        for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            if environ.get(name, "http/protobuf") != "http/protobuf":
                raise ConfigurationError(
                    f"{name}={environ[name]}: the gateway exports traces over OTLP/HTTP "
                    "only (http/protobuf)"
                )
        resource = Resource.create({"service.version": version})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter()), resource)

    @classmethod
    def with_processor(
        cls, processor: SpanProcessor, resource: Resource | None = None
    ) -> OpenTelemetryTracing:
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor)
        return cls(provider)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """``app`` with a server span around each HTTP request."""

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            await self._serve(app, scope, receive, send)

        return traced

    async def inject_trace_context(self, request: httpx.Request) -> None:
        """An httpx request hook: the current span's ``traceparent`` goes upstream."""
        self._propagator.inject(request.headers)

    def shutdown(self) -> None:
        """Export what is still buffered, then stop."""
        self._provider.shutdown()

    async def _serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        parent = self._propagator.extract(_trace_headers(scope))
        span = self._tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        )  # fmt: skip
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        stages = ChatStages()
        stages_token = _CHAT_STAGES.set(stages)
        context_token = context.attach(trace.set_span_in_context(span, parent))
        try:
            await app(scope, receive, send_status)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            raise
        finally:
            context.detach(context_token)
            _CHAT_STAGES.reset(stages_token)
            self._close(span, scope, status, stages)

    def _close(self, span: Span, scope: Scope, status: int, stages: ChatStages) -> None:
        route = scope.get("path_template")
        if route:
            span.update_name(f"{scope['method']} {route}")
            span.set_attribute("http.route", route)
        if status:
            span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        state = scope.get("state") or {}
        log = state.get("log") or {}
        if "request_id" in state:
            span.set_attribute("gateway.request_id", state["request_id"])
        degraded = {DEGRADED_STAGE.get(s, s) for s in log.get("degraded", ())}
        parent = trace.set_span_in_context(span)
        for stage, start, end in stages.layout():
            child = self._tracer.start_span(
                STAGE_SPANS[stage], context=parent, start_time=start,
                attributes={"gateway.stage": str(stage)},
            )  # fmt: skip
            if stage in degraded:
                child.set_status(Status(StatusCode.ERROR, "degraded: skipped from the answer"))
            child.end(end_time=end)
        span.end()
        # The access log line names the trace, so that logs and traces meet.
        trace_id = span.get_span_context().trace_id
        if trace_id and isinstance(state, dict):
            state.setdefault("log", {})["trace_id"] = format(trace_id, "032x")

"""The wire format: msgspec structs for requests and responses (adapter types, not
domain types). They validate what the gateway checks itself and document the API in
the OpenAPI schema; the bounds come from the domain."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from domain.chat import MAX_TOKENS_MIN, TEMPERATURE_RANGE, TOP_P_RANGE

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
Temperature = Annotated[float, msgspec.Meta(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])]
TopP = Annotated[float, msgspec.Meta(ge=TOP_P_RANGE[0], le=TOP_P_RANGE[1])]
MaxTokens = Annotated[int, msgspec.Meta(ge=MAX_TOKENS_MIN)]


class ChatMessage(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, omit_defaults=True):
    """OpenAI's chat completion request. Parameters not listed are forwarded too."""

    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    model: str | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct):
    role: Literal["assistant"]
    content: str | None


class Choice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str | None


class ChatCompletion(msgspec.Struct):
    """Relayed as the upstream sent it; this is its documented shape."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class Model(msgspec.Struct):
    id: str
    owned_by: str
    created: int
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    data: list[Model]
    object: Literal["list"] = "list"


class ServiceStatus(msgspec.Struct):
    status: Literal["healthy", "degraded", "unhealthy"]
    latency_ms: float
    detail: str | None = None


class HealthResponse(msgspec.Struct):
    status: Literal["healthy", "degraded", "unhealthy"]
    version: str
    services: dict[str, ServiceStatus]


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(msgspec.Struct):
    """OpenAI's error body: every non-2xx answer of the gateway has this shape."""

    error: ErrorDetail


class LatencySummary(msgspec.Struct):
    count: int
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


class RouteMetrics(msgspec.Struct):
    requests: int
    errors: int
    latency: LatencySummary


class MetricsResponse(msgspec.Struct):
    uptime_s: float
    requests: int
    errors: int
    auth_failures: int
    latency: LatencySummary
    routes: dict[str, RouteMetrics]

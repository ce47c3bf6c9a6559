"""The wire format: msgspec structs for requests and responses (adapter types, not
domain types). They validate what the gateway checks itself and document the API in
the OpenAPI schema; the bounds come from the domain."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from domain.chat import (
    LATENCY_BUDGET_RANGE_MS,
    LOGIT_BIAS_RANGE,
    MAX_TOKENS_MAX,
    MAX_TOKENS_MIN,
    N_MIN,
    PENALTY_RANGE,
    STOP_MAX_CHARS,
    STOP_MAX_SEQUENCES,
    TEMPERATURE_RANGE,
    TOP_LOGPROBS_RANGE,
    TOP_P_RANGE,
)
from domain.memory import MAX_USER_ID

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
Temperature = Annotated[float, msgspec.Meta(ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])]
TopP = Annotated[float, msgspec.Meta(ge=TOP_P_RANGE[0], le=TOP_P_RANGE[1])]
MaxTokens = Annotated[int, msgspec.Meta(ge=MAX_TOKENS_MIN, le=MAX_TOKENS_MAX)]
Penalty = Annotated[float, msgspec.Meta(ge=PENALTY_RANGE[0], le=PENALTY_RANGE[1])]
TopLogprobs = Annotated[int, msgspec.Meta(ge=TOP_LOGPROBS_RANGE[0], le=TOP_LOGPROBS_RANGE[1])]
LogitBias = Annotated[float, msgspec.Meta(ge=LOGIT_BIAS_RANGE[0], le=LOGIT_BIAS_RANGE[1])]
StopSequence = Annotated[str, msgspec.Meta(max_length=STOP_MAX_CHARS)]
Stop = StopSequence | Annotated[list[StopSequence], msgspec.Meta(max_length=STOP_MAX_SEQUENCES)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A request body of the gateway's own: a field it does not know (a typo, a
    parameter of another API) is a 400 naming it, never silently ignored. OpenAI's
    chat completions body is the exception: unknown parameters go to the upstream."""


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
    stop: Stop | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # At least 1; at most the key's tier allows (checked at admission).
    n: Annotated[int, msgspec.Meta(ge=N_MIN)] | None = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, LogitBias] | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
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
    """OpenAI's model object, plus what the model is for (``chat`` or ``embeddings``:
    the route that takes it), the model that serves it (``root``: itself, or the model
    an alias names) and the other names that reach it."""

    id: str
    owned_by: str
    created: int
    purpose: Literal["chat", "embeddings"] = "chat"
    root: str | None = None
    aliases: list[str] = []
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
    stages: dict[str, LatencySummary]


# --- knowledge base -------------------------------------------------------------------
Metadata = dict[str, str | int | float | bool | None]


class DocumentIn(Body):
    text: str
    source: str
    metadata: Metadata = {}
    scope: Literal["tenant", "global"] = "tenant"
    # The chunk size and overlap in the embedder's tokens (default: the gateway's).
    chunk_size: int | None = None
    chunk_overlap: int | None = None


class DocumentsIn(Body):
    documents: Annotated[list[DocumentIn], msgspec.Meta(min_length=1, max_length=256)]


class IngestedDocument(msgspec.Struct):
    id: str
    source: str
    chunk_count: int
    object: Literal["document"] = "document"
    # A document with this source was there before and is replaced.
    replaced: bool = False


class RefusedFile(msgspec.Struct):
    """A file of an upload that was not ingested (nothing of it stored) and why."""

    source: str
    status: int
    code: str | None
    message: str


class IngestedList(msgspec.Struct):
    data: list[IngestedDocument]
    object: Literal["list"] = "list"
    # The files of an upload that were not ingested (the others were).
    errors: list[RefusedFile] = []


class DocumentOut(msgspec.Struct):
    id: str
    source: str
    scope: Literal["tenant", "global"]
    chunk_count: int
    created_at: int
    metadata: Metadata
    object: Literal["document"] = "document"


class ChunkOut(msgspec.Struct):
    """A chunk as stored: ``start``/``end`` its span in the document's text (its overlap
    with the chunk before not counted), ``page`` 1-based (PDF; else null)."""

    id: str
    text: str
    page: int | None
    heading_path: list[str]
    start: int
    end: int


class DocumentDetailOut(DocumentOut):
    """A document read back; ``chunks`` with ``?include=chunks`` only, in order."""

    chunks: list[ChunkOut] | msgspec.UnsetType = msgspec.UNSET


class DocumentPage(msgspec.Struct):
    data: list[DocumentOut]
    has_more: bool
    object: Literal["list"] = "list"


class Deleted(msgspec.Struct):
    id: str
    object: str
    deleted: bool = True


# A search filter: user metadata (exact values) and the system fields every hit shows:
# `source` and `document_id` (exact), `created_at` as a range {"gte": date, "lt": date}.
DateBound = str | float
Filter = dict[str, str | int | float | bool | dict[str, DateBound] | None]


class RagSearchIn(Body):
    query: Annotated[str, msgspec.Meta(min_length=1)]
    k: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    filter: Filter = {}


class DocumentHitOut(msgspec.Struct):
    """``score`` ordered the hits (the fused reciprocal-rank score in hybrid mode);
    ``similarity`` is the chunk's cosine similarity to the query."""

    text: str
    score: float
    similarity: float
    metadata: dict[str, Any]


class RagSearchOut(msgspec.Struct):
    data: list[DocumentHitOut]
    object: Literal["list"] = "list"


class EmbeddingsIn(Body):
    input: str | Annotated[list[str], msgspec.Meta(min_length=1)]
    model: str | None = None
    # Only the embedder's own dimension can be honoured (any other: 400).
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class EmbeddingOut(msgspec.Struct):
    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsOut(msgspec.Struct):
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"


# --- unified chat ---------------------------------------------------------------------
# The widest budget any configuration allows; GATEWAY_CHAT_MAX_BUDGET_MS, checked per
# request, is the bound in force.
Budget = Annotated[
    float, msgspec.Meta(ge=LATENCY_BUDGET_RANGE_MS[0], le=LATENCY_BUDGET_RANGE_MS[1])
]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER_ID)]


class UnifiedMessage(Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class UnifiedChatIn(msgspec.Struct):
    """The seed's ``/v1/chat`` request: field names, defaults and bounds as there."""

    messages: Annotated[list[UnifiedMessage], msgspec.Meta(min_length=1)]
    model: str = "llama-3.3-8b-instruct"
    user_id: UserId | None = None
    use_memory: bool = True
    use_rag: bool = True
    store_memory: bool = True
    rag_k: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    memory_limit: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    # The seed's default is 2048 (lowered to the key's cap when that is smaller).
    max_tokens: MaxTokens | None = None
    temperature: Temperature = 0.7
    top_p: TopP = 0.9
    stream: bool = False
    latency_budget_ms: Budget | None = None
    rag_filter: Filter = {}


class MemoryContext(msgspec.Struct):
    """``score`` (similarity with temporal decay) ordered the memories; ``similarity``
    is the cosine similarity to the query."""

    text: str
    score: float
    similarity: float
    timestamp: str


class RagPassageOut(DocumentHitOut):
    """A passage given to the model, numbered as the model saw it (``[number]``), with
    where it comes from: its document, chunk, page (PDF) and heading path, and its
    character span in the document's text (``GET /v1/documents/{document_id}``)."""

    number: int = 0
    document_id: str | None = None
    source: str | None = None
    chunk_id: str | None = None
    page: int | None = None
    heading_path: list[str] = []
    start: int | None = None
    end: int | None = None


class PassageReference(msgspec.Struct, omit_defaults=True):
    """Where a passage given to the model comes from (``x-gateway-references``)."""

    number: int
    document_id: str | None = None
    source: str | None = None
    chunk_id: str | None = None
    page: int | None = None
    heading_path: list[str] = []
    start: int | None = None
    end: int | None = None


class CitationOut(msgspec.Struct):
    """A ``[number]`` the answer cites, mapped to its passage."""

    number: int
    document_id: str | None
    source: str | None
    chunk_id: str | None
    page: int | None


class Context(msgspec.Struct):
    memories: list[MemoryContext]
    rag_documents: list[RagPassageOut]


class Degraded(msgspec.Struct):
    stage: str
    reason: str


class UnifiedMetadataOut(msgspec.Struct):
    memory_retrieval_ms: float
    rag_retrieval_ms: float
    generation_ms: float
    total_latency_ms: float
    memories_retrieved: int
    rag_documents_retrieved: int
    memory_stored: bool
    memory_id: str | None
    degraded: list[Degraded]
    embedding_ms: float
    within_budget: bool
    latency_budget_ms: float
    # The passages the answer cites ([n] in its text), in order; empty when it cites none.
    citations: list[CitationOut] = []


class UnifiedChoice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str | None


class UnifiedChatOut(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[UnifiedChoice]
    usage: Usage | None
    context: Context
    metadata: UnifiedMetadataOut
    object: Literal["unified.chat.completion"] = "unified.chat.completion"


class UnifiedContextEvent(msgspec.Struct):
    context: Context
    object: Literal["unified.chat.context"] = "unified.chat.context"


class UnifiedMetadataEvent(msgspec.Struct):
    metadata: UnifiedMetadataOut
    usage: Usage | None
    object: Literal["unified.chat.metadata"] = "unified.chat.metadata"


# --- memories -------------------------------------------------------------------------
class MemoryIn(Body):
    user_id: UserId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    metadata: Metadata = {}


class MemoryUpdateIn(Body):
    user_id: UserId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class MemoryOut(msgspec.Struct):
    id: str
    user_id: str
    text: str
    timestamp: str
    metadata: dict[str, Any]
    object: Literal["memory"] = "memory"


class MemoryPage(msgspec.Struct):
    data: list[MemoryOut]
    has_more: bool
    object: Literal["list"] = "list"


class MemorySearchIn(Body):
    user_id: UserId
    query: Annotated[str, msgspec.Meta(min_length=1)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5


class MemoryHitOut(msgspec.Struct):
    id: str
    text: str
    score: float
    similarity: float
    timestamp: str


class MemorySearchOut(msgspec.Struct):
    data: list[MemoryHitOut]
    object: Literal["list"] = "list"


class Forgotten(msgspec.Struct):
    user_id: str
    deleted: int
    object: Literal["memory.forget"] = "memory.forget"


# --- managed keys ---------------------------------------------------------------------
class KeyContext(Body):
    """Memory and RAG for the key's requests that send no ``X-Gateway-*`` header (a
    header overrides each, off included). ``user_id_from``: whose memories when no
    ``X-Gateway-User-Id`` says: ``header`` (nobody's: memory is skipped), ``key`` (the
    key's own), ``request`` (the body's ``user``, Anthropic's ``metadata.user_id``)."""

    memory: bool = False
    rag: bool = False
    user_id_from: Literal["header", "key", "request"] = "header"


class KeyIn(Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    tier: Literal["standard", "developer", "admin"] = "standard"
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    allowed_models: list[str] | None = None
    max_tokens: MaxTokens | None = None
    token_quota: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    quota_period: Literal["day", "month"] = "month"
    context: KeyContext | None = None


class KeyOut(msgspec.Struct):
    id: str
    name: str
    tier: str
    tenant: str
    created_at: int
    last_used_at: int | None
    revoked: bool
    allowed_models: list[str] | None
    max_tokens: int | None
    token_quota: int | None
    quota_period: str
    context: KeyContext
    object: Literal["api_key"] = "api_key"


class CreatedKey(msgspec.Struct):
    """``key`` is the secret: shown this once, never stored or shown again."""

    id: str
    key: str
    name: str
    tier: str
    tenant: str
    object: Literal["api_key"] = "api_key"


class KeyWithUsage(msgspec.Struct):
    key: KeyOut
    tokens_used_this_period: int
    period: str
    object: Literal["api_key.usage"] = "api_key.usage"


class UsageBucketOut(msgspec.Struct):
    start: int  # epoch seconds, UTC
    requests: int
    tokens: int


class KeyUsageHistory(msgspec.Struct):
    """A key's admitted requests and tokens in time buckets (``bucket_s`` long, oldest
    first, the last one still filling), with its token quota in its current period."""

    key_id: str
    window: Literal["1h", "24h"]
    bucket_s: int
    requests: int
    tokens: int
    data: list[UsageBucketOut]
    token_quota: int | None
    quota_period: str
    period: str
    tokens_used_this_period: int
    object: Literal["api_key.usage_history"] = "api_key.usage_history"


class KeyList(msgspec.Struct):
    data: list[KeyOut]
    has_more: bool = False
    object: Literal["list"] = "list"

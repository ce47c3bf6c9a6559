"""Errors the domain and the ports speak. Adapters translate driver errors into these;
the HTTP adapter maps each to one status code in a single table."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(GatewayError):
    """The client sent something the gateway or the upstream will not accept."""

    code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    """A parameter the serving model cannot honour (named in ``param``)."""

    code = "unsupported_parameter"


class RequestTooLarge(GatewayError):
    """The request (an upload, a document) is larger than the gateway accepts."""

    code = "request_too_large"


class UnsupportedDocument(GatewayError):
    """A file whose content is of no type the knowledge base can read."""

    code = "unsupported_media_type"


class UnreadableDocument(InvalidRequest):
    """A file of a known type that cannot be read: corrupt, encrypted, a zip bomb, a
    scan without a text layer. The message names the file and the reason."""

    code = "unreadable_document"


class ModelNotFound(GatewayError):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
        )
        self.model = model


class Unauthenticated(GatewayError):
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    code = "insufficient_tier"


class ModelNotAllowed(PermissionDenied):
    """The key's ``allowed_models`` do not include the model asked for."""

    code = "model_not_allowed"


class UpstreamError(GatewayError):
    """The inference upstream failed; subclasses say how."""


class UpstreamUnavailable(UpstreamError):
    """Unreachable, or answered something that is not a valid response."""

    code = "upstream_unavailable"


class UpstreamOverloaded(UpstreamError):
    """Too many requests are waiting for this upstream (or its circuit is open)."""

    code = "upstream_overloaded"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request as invalid (its 4xx); the message is its own."""

    code = "upstream_rejected"

    def __init__(self, message: str, *, status: int, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status = status


class BackendUnavailable(GatewayError):
    """A retrieval backend (embedder, vector store, memory store) cannot answer."""

    code = "backend_unavailable"


class EmbeddingUnavailable(BackendUnavailable):
    code = "embedding_unavailable"


class IndexUnavailable(BackendUnavailable):
    code = "index_unavailable"


class MemoryUnavailable(BackendUnavailable):
    code = "memory_unavailable"


class NotFound(GatewayError):
    """A resource (document, memory, key) the caller may see does not exist."""

    code = "not_found"


class RateLimited(GatewayError):
    """Over the key's per-minute limits; ``admission`` says when to come back."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, admission: object) -> None:
        super().__init__(message)
        self.admission = admission


class QuotaExceeded(GatewayError):
    """The key's token quota for the period is spent."""

    code = "quota_exceeded"


class ConfigurationError(GatewayError):
    """A setting is missing or malformed; the gateway refuses to start."""


class TextCompletionsUnsupported(InvalidRequest):
    """The routed upstream does not serve the legacy ``/v1/completions``."""

    code = "completions_unsupported"

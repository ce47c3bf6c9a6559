"""What the gateway reads of OpenAI's wire format (msgspec structs, decoded without the
rest of the body), shared by every adapter that talks to an OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.inference.upstream_reason import client_safe_reason
from domain.chat import Usage


class WireUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def domain(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens, self.total_tokens)


class Message(msgspec.Struct):
    content: str | None = None


class Choice(msgspec.Struct):
    message: Message | None = None
    finish_reason: str | None = None


class CompletionHead(msgspec.Struct):
    """What the gateway reads of a completion; the rest is relayed untouched."""

    choices: list[Choice]
    model: str = ""
    usage: WireUsage | None = None


class Delta(msgspec.Struct):
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: Delta | None = None
    finish_reason: str | None = None


class ChunkHead(msgspec.Struct):
    """What the gateway reads of a ``chat.completion.chunk`` (its identity loosely
    typed: a relayed stream is not refused for an odd ``id`` or ``created``)."""

    id: str | None = None
    created: int | float | None = None
    model: str | None = None
    choices: list[ChunkChoice] = []
    usage: WireUsage | None = None


class TextChoice(msgspec.Struct):
    text: str = ""


class TextChunkHead(msgspec.Struct):
    """What the gateway reads of a legacy ``text_completion`` chunk."""

    id: str | None = None
    created: int | float | None = None
    model: str | None = None
    choices: list[TextChoice] = []


class ModelEntry(msgspec.Struct):
    id: str
    owned_by: str | None = None
    created: int | None = None


class ModelList(msgspec.Struct):
    data: list[ModelEntry]


class Embedding(msgspec.Struct):
    embedding: list[float]
    index: int


class EmbeddingList(msgspec.Struct):
    data: list[Embedding]


class ErrorDetail(msgspec.Struct):
    message: str = ""
    param: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail | str | None = None
    detail: Any = None
    message: str | None = None


decode_completion = msgspec.json.Decoder(CompletionHead).decode
decode_chunk = msgspec.json.Decoder(ChunkHead).decode
decode_text_chunk = msgspec.json.Decoder(TextChunkHead).decode
decode_models = msgspec.json.Decoder(ModelList).decode
decode_embeddings = msgspec.json.Decoder(EmbeddingList).decode
_decode_error = msgspec.json.Decoder(ErrorBody).decode
encode = msgspec.json.Encoder().encode
MALFORMED = (msgspec.DecodeError, msgspec.ValidationError)


def usage_json(usage: Usage) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def api_base(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1`` both mean the ``/v1`` API."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _validation_detail(detail: Any) -> str:
    """FastAPI's 422 ``detail``: [{"loc": [...], "msg": ...}], said as a sentence."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", ""))
        return f"{message} (at `{where}`)" if where else message
    return str(detail)[:500]


def error_reason(content: bytes, fallback: str) -> tuple[str, str | None]:
    """An error body's reason (and the parameter it names), made safe to show the
    client (no traceback, no secret); ``fallback`` when it gives none."""
    try:
        body = _decode_error(content)
    except MALFORMED:
        text = content[:2000].decode("utf-8", "replace")
        return client_safe_reason(text, fallback), None
    if isinstance(body.error, ErrorDetail):
        return client_safe_reason(body.error.message, fallback), body.error.param
    if isinstance(body.error, str):
        return client_safe_reason(body.error, fallback), None
    if body.message:
        return client_safe_reason(body.message, fallback), None
    reason = _validation_detail(body.detail) if body.detail else ""
    return client_safe_reason(reason, fallback), None

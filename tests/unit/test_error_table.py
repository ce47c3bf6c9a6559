"""The one table from errors to HTTP statuses and OpenAI error bodies."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from litestar.exceptions import HTTPException, ValidationException

import domain.errors as errors
from adapters.http.errors import status_and_body
from domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    EmbeddingUnavailable,
    GatewayError,
    IndexUnavailable,
    InvalidRequest,
    MemoryUnavailable,
    ModelNotAllowed,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    RequestTooLarge,
    TextCompletionsUnsupported,
    Unauthenticated,
    UnreadableDocument,
    UnsupportedDocument,
    UnsupportedParameter,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

INTERNAL = ("internal error", "server_error", None, "internal_error")

# error → (status, type, param, code)
DOMAIN_CASES: list[tuple[GatewayError, tuple[int, str, str | None, str]]] = [
    (ModelNotFound("gpt-9"), (404, "invalid_request_error", "model", "model_not_found")),
    (
        TextCompletionsUnsupported("no /v1/completions", param="model"),
        (400, "invalid_request_error", "model", "completions_unsupported"),
    ),
    (
        InvalidRequest("bad temperature", param="temperature"),
        (400, "invalid_request_error", "temperature", "invalid_request"),
    ),
    (
        UnsupportedParameter("n must be 1", param="n"),
        (400, "invalid_request_error", "n", "unsupported_parameter"),
    ),
    (
        Unauthenticated("Invalid or revoked API key"),
        (401, "invalid_request_error", None, "invalid_api_key"),
    ),
    (PermissionDenied("tier too low"), (403, "permission_error", None, "insufficient_tier")),
    (
        ModelNotAllowed("not this model", param="model"),
        (403, "permission_error", "model", "model_not_allowed"),
    ),
    (UpstreamOverloaded("busy"), (503, "server_error", None, "upstream_overloaded")),
    (UpstreamTimeout("slow"), (504, "server_error", None, "upstream_timeout")),
    (UpstreamUnavailable("down"), (502, "server_error", None, "upstream_unavailable")),
    (
        UpstreamRejected("bad schema", status=422, param="messages"),
        (422, "invalid_request_error", "messages", "upstream_rejected"),
    ),
    (
        UpstreamRejected("odd", status=500),
        (400, "invalid_request_error", None, "upstream_rejected"),
    ),
    (RateLimited("slow down", admission=None), (429, "requests", None, "rate_limit_exceeded")),
    (QuotaExceeded("spent"), (429, "insufficient_quota", None, "quota_exceeded")),
    (NotFound("no such document"), (404, "invalid_request_error", None, "not_found")),
    (
        RequestTooLarge("over the limit"),
        (413, "invalid_request_error", None, "request_too_large"),
    ),
    (
        UnsupportedDocument("photo.png: not a PDF", param="file"),
        (415, "invalid_request_error", "file", "unsupported_media_type"),
    ),
    (
        UnreadableDocument("a.pdf: encrypted", param="file"),
        (400, "invalid_request_error", "file", "unreadable_document"),
    ),
    (BackendUnavailable("down"), (503, "server_error", None, "backend_unavailable")),
    (EmbeddingUnavailable("down"), (503, "server_error", None, "embedding_unavailable")),
    (IndexUnavailable("down"), (503, "server_error", None, "index_unavailable")),
    (MemoryUnavailable("down"), (503, "server_error", None, "memory_unavailable")),
    # Not client-facing on purpose: a 500 that does not echo the message.
    (ConfigurationError("API_KEYS missing"), (500, *INTERNAL[1:])),
    (UpstreamError("no subclass"), (500, *INTERNAL[1:])),
    (GatewayError("base"), (500, *INTERNAL[1:])),
]


def assert_openai_shape(body: dict[str, Any]) -> dict[str, Any]:
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize(
    ("exc", "expected"), DOMAIN_CASES, ids=[type(e).__name__ for e, _ in DOMAIN_CASES]
)
def test_each_domain_error_has_its_status_and_body(
    exc: GatewayError, expected: tuple[int, str, str | None, str]
) -> None:
    status, body = status_and_body(exc)

    error = assert_openai_shape(body)
    assert (status, error["type"], error["param"], error["code"]) == expected


def test_the_table_covers_every_domain_error_class() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, GatewayError)
    }

    assert classes == {type(exc) for exc, _ in DOMAIN_CASES}


@pytest.mark.parametrize("status", [400, 404, 409, 422, 499])
def test_an_upstream_4xx_keeps_its_status(status: int) -> None:
    assert status_and_body(UpstreamRejected("no", status=status))[0] == status


@pytest.mark.parametrize("status", [200, 302, 500, 503])
def test_an_upstream_rejection_outside_4xx_is_a_400(status: int) -> None:
    assert status_and_body(UpstreamRejected("no", status=status))[0] == 400


def test_client_errors_keep_their_own_message() -> None:
    _, body = status_and_body(InvalidRequest("temperature must be <= 2", param="temperature"))

    assert body["error"]["message"] == "temperature must be <= 2"


def test_an_upstream_rejection_says_so_and_keeps_the_upstreams_message() -> None:
    _, body = status_and_body(UpstreamRejected("context length exceeded", status=400))

    assert "upstream" in body["error"]["message"]
    assert "context length exceeded" in body["error"]["message"]


def test_an_unexpected_exception_is_a_500_that_does_not_leak_its_text() -> None:
    status, body = status_and_body(RuntimeError("secret sk-abc"))

    error = assert_openai_shape(body)
    assert status == 500
    assert (error["message"], error["type"], error["param"], error["code"]) == INTERNAL
    assert "sk-abc" not in str(body)
    assert "secret" not in str(body)


def test_a_body_too_large_is_413_request_too_large() -> None:
    status, body = status_and_body(HTTPException(status_code=413, detail="too big"))

    error = assert_openai_shape(body)
    assert (status, error["code"]) == (413, "request_too_large")


def test_a_missing_field_names_it_as_param() -> None:
    exc = ValidationException(
        detail="Validation failed for POST /v1/chat/completions",
        extra=[{"message": "Object missing required field `messages`", "key": "data"}],
    )

    status, body = status_and_body(exc)

    error = assert_openai_shape(body)
    assert (status, error["param"], error["code"]) == (400, "messages", "invalid_request")

"""The one table from errors to HTTP answers, every one in OpenAI's error body."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from adapters.http.ratelimit import ratelimit_headers
from domain.errors import (
    BackendUnavailable,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    RequestTooLarge,
    Unauthenticated,
    UnsupportedDocument,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from domain.limits import Admission

log = structlog.get_logger("gateway.http")

# Most specific first: the first class an error is an instance of decides.
_DOMAIN_STATUS: tuple[tuple[type[GatewayError], int, str], ...] = (
    (ModelNotFound, 404, "invalid_request_error"),
    (RequestTooLarge, 413, "invalid_request_error"),
    (UnsupportedDocument, 415, "invalid_request_error"),
    (NotFound, 404, "invalid_request_error"),
    (InvalidRequest, 400, "invalid_request_error"),
    (Unauthenticated, 401, "invalid_request_error"),
    (PermissionDenied, 403, "permission_error"),
    (RateLimited, 429, "requests"),
    (QuotaExceeded, 429, "insufficient_quota"),
    (UpstreamOverloaded, 503, "server_error"),
    (UpstreamTimeout, 504, "server_error"),
    (UpstreamUnavailable, 502, "server_error"),
    (BackendUnavailable, 503, "server_error"),
)

_HTTP_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "insufficient_tier",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "request_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
    431: "headers_too_large",
    499: "client_closed_request",
}
# A 503 always says when to come back: the error's own figure (an upstream's
# Retry-After) when it has one, else the gateway's default (its circuit cooldown).
DEFAULT_RETRY_AFTER_S = 10.0


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _type_for(status: int) -> str:
    return "invalid_request_error" if status < 500 else "server_error"


def status_and_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI error body for any exception (also used mid-stream)."""
    if isinstance(exc, UpstreamRejected):
        status = exc.status if 400 <= exc.status < 500 else 400
        message = f"the inference upstream rejected the request: {exc.message}"
        return status, error_body(message, "invalid_request_error", exc.param, exc.code)
    if isinstance(exc, GatewayError):
        for cls, status, type_ in _DOMAIN_STATUS:
            if isinstance(exc, cls):
                return status, error_body(exc.message, type_, exc.param, exc.code)
    if isinstance(exc, ValidationException):
        return 400, _validation_body(exc)
    if isinstance(exc, RecursionError):
        return 400, error_body(
            "JSON nests too deeply", "invalid_request_error", None, "invalid_json"
        )
    if isinstance(exc, UnicodeDecodeError):
        return 400, error_body(
            "the body is not UTF-8", "invalid_request_error", None, "invalid_json"
        )
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 413:
            return status, error_body(
                "Request body too large", "invalid_request_error", None, _HTTP_CODES[413]
            )
        return status, error_body(str(exc.detail), _type_for(status), None, _HTTP_CODES.get(status))
    log.error("unhandled_error", exc_info=exc)
    return 500, error_body("internal error", "server_error", None, "internal_error")


EMPTY_BODY = "the request body is empty; expected a JSON object"
_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '([^']+)'")


def missing_field(message: str) -> str | None:
    """The field msgspec says is missing (or unknown), if that is what it says."""
    found = _NAMED_FIELD.search(message)
    return found.group(1) if found else None


def _validation_body(exc: ValidationException) -> dict[str, Any]:
    # Litestar reports msgspec's findings as [{"message", "key", "source"}], with the
    # key "data" for the body itself.
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    detail = first.get("message")
    param = first.get("key") or None
    if param == "data" and detail == "'data'":
        # Litestar finds no body at all to give the handler ("data" is its name for it).
        return error_body(EMPTY_BODY, "invalid_request_error", None, "invalid_request")
    field = missing_field(detail or "")
    if param == "data":
        param = field
    elif param and field:
        param = f"{param}.{field}"  # nested: `messages[0]` + `nmae`
    if param is None:
        named = _MISSING_PARAMETER.search(str(exc.detail))
        param = named.group(1) if named else None
    message = f"{detail} (at `{param}`)" if detail and param else detail or str(exc.detail)
    return error_body(message, "invalid_request_error", param, "invalid_request")


def retry_after(exc: Exception, default_s: float) -> str:
    """``Retry-After`` in whole seconds (at least 1) for a 503 caused by ``exc``."""
    known = getattr(exc, "retry_after_s", None)
    seconds = known if isinstance(known, int | float) and known > 0 else default_s
    return str(max(1, math.ceil(seconds)))


def exception_handler(
    retry_after_s: float = DEFAULT_RETRY_AFTER_S,
) -> Callable[[Request[Any, Any, Any], Exception], Response[Any]]:
    """The application's one exception handler; ``retry_after_s``: the ``Retry-After``
    of a 503 whose error does not know better."""

    def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        status, body = status_and_body(exc)
        headers = dict(getattr(exc, "headers", None) or {})
        if isinstance(exc, RateLimited) and isinstance(exc.admission, Admission):
            headers.update(ratelimit_headers(exc.admission))
        if status == 401:
            headers = {**headers, "WWW-Authenticate": "Bearer"}
        if status == 503:
            headers["Retry-After"] = retry_after(exc, retry_after_s)
        return Response(content=body, status_code=status, headers=headers)

    return handle_exception


handle_exception = exception_handler()

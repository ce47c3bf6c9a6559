"""Errors in the shape of the protocol a route speaks: Anthropic's on ``/v1/messages``
(its SDKs read ``{"type": "error", "error": {"type", "message"}}``), OpenAI's elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response

from application.protocols import anthropic

ANTHROPIC_PATHS = ("/v1/messages",)

Handler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]


def speaks_anthropic(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in ANTHROPIC_PATHS)


def anthropic_error(status: int, openai_body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's error body (the gateway's one table) said as Anthropic says it."""
    error = openai_body.get("error") or {}
    message = str(error.get("message") or "error")
    return anthropic.error_body(status, message)


def by_protocol(handler: Handler) -> Handler:
    """``handler`` (OpenAI's shape), its body reshaped on the routes of other protocols."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response = handler(request, exc)
        if not speaks_anthropic(request.url.path) or not isinstance(response.content, dict):
            return response
        status = response.status_code or 500
        return Response(
            content=anthropic_error(status, response.content),
            status_code=response.status_code,
            headers=dict(response.headers),
        )

    return handle

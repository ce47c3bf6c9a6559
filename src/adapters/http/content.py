"""Request body checks shared by the JSON endpoints."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler

from domain.errors import InvalidRequest

T = TypeVar("T")


async def json_body(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard (guards run before the body is read): JSON or 415."""
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type must be application/json, not {media_type or 'missing'!r}",
        )


def strictly(raw: bytes, wire_type: type[T]) -> T:
    """The body decoded with msgspec's strict types: Litestar's own decoding is lax
    ("stream": 1 and "max_tokens": "8" pass), and what is forwarded must be what the
    API documents."""
    try:
        return msgspec.json.decode(raw, type=wire_type)
    except msgspec.ValidationError as exc:
        text, at, where = str(exc).rpartition(" - at `$")
        param = where.rstrip("`").lstrip(".") if at else None
        raise InvalidRequest(
            f"{text if at else exc} (at `{param}`)" if param else str(exc), param=param or None
        ) from None

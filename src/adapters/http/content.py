"""Request body checks shared by the JSON endpoints."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, SerializationException
from litestar.handlers.base import BaseRouteHandler

from adapters.http.errors import EMPTY_BODY
from domain.errors import InvalidRequest

T = TypeVar("T")

# Numbers as written: a float64 cannot hold 1e400, a Decimal can (and says so).
_decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode


async def json_body(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard (guards run before the body is read): JSON or 415."""
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type must be application/json, not {media_type or 'missing'!r}",
        )


class JSONBodyRequest(Request[Any, Any, Any]):
    """The application's request class. Litestar decodes the body untyped
    before it validates it, so msgspec reports a number beyond float64 ("Number out of
    range - at `$[...]`") without its field; this names the field. An empty body is
    named as such (Litestar's own message is ``'data'``). (Multipart uploads are not
    read through ``form()``: see ``upload_spool``, which streams them to disk.)"""

    async def json(self) -> Any:
        if not (await self.body()).strip():
            raise InvalidRequest(EMPTY_BODY)
        try:
            return await super().json()
        except SerializationException as exc:
            if "out of range" not in str(exc):
                raise
            param = out_of_range(await self.body())
            if param is None:
                raise
            raise InvalidRequest(f"Number out of range (at `{param}`)", param=param) from None


def out_of_range(raw: bytes) -> str | None:
    """The path (``temperature``, ``messages[0].content``) of the first number of the
    JSON ``raw`` that a float64 cannot hold, if there is one."""
    try:
        document = _decode_exact(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    # Depth first, in document order, without recursion (the nesting is the client's).
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, Decimal):
            if not math.isfinite(float(value)):
                return path or None
        elif isinstance(value, dict):
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
            pending.extend(reversed(children))
        elif isinstance(value, list):
            pending.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return None


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

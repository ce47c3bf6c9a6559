"""What the OpenAPI schema says of error answers, shared by the controllers, and the
bounds of the wire format that Litestar's schema leaves out."""

from __future__ import annotations

import inspect
import re
from functools import cache
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi import ResponseSpec
from litestar.routes import HTTPRoute

from adapters.http import protocol_wire, wire
from adapters.http.auth import PUBLIC_PATHS
from adapters.http.wire import ErrorResponse
from domain.principal import Capability

BEARER = "bearer"

_BOUNDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    descriptions = {
        400: "Invalid request: the field is named in `error.param`",
        401: "Missing or invalid API key",
        403: "The key's tier does not allow this",
        404: "Unknown model (`model_not_found`) or resource",
        413: "Request body too large",
        415: "Content-Type is not application/json",
        429: "Over the key's rate limit (Retry-After says when) or token quota",
        502: "The inference upstream is unreachable or answered garbage",
        503: "Overloaded: the upstream's queue is full",
        504: "The inference upstream did not answer in time",
    }
    # Any route can refuse a malformed request or a key over its limits.
    statuses = tuple(sorted({400, 429, *statuses}))
    return {
        s: ResponseSpec(
            data_container=ErrorResponse, description=descriptions[s], generate_examples=False
        )
        for s in statuses
    }


@cache
def _wire_schemas() -> dict[str, Any]:
    """msgspec's own JSON schema of every wire struct, by component name."""
    structs = [
        value
        for module in (wire, protocol_wire)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == module.__name__
    ]
    _, components = msgspec.json.schema_components(structs)
    return components


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    """The bounds of a property, its union's branches included."""
    found = {}
    for part in [schema, *schema.get("anyOf", ()), *schema.get("oneOf", ())]:
        found.update({key: part[key] for key in _BOUNDS if key in part})
    return found


def with_wire_bounds(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (Litestar's OpenAPI schema as a dict) with every bound of the wire
    structs. Litestar tests a bound for truth, so a bound of 0 on an optional field
    (``temperature: float | None`` with ``ge=0``) is left out, and clients and fuzzers
    take -1 for valid; msgspec's schema of the same structs has it."""
    served = document.get("components", {}).get("schemas", {})
    for name, schema in _wire_schemas().items():
        properties = served.get(name, {}).get("properties", {})
        for field, declared in schema.get("properties", {}).items():
            documented = properties.get(field)
            if documented is None:
                continue
            present = _bounds(documented)
            for key, value in _bounds(declared).items():
                if key not in present:
                    documented[key] = value
    return document


def _components(
    *structs: type[msgspec.Struct],
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    refs, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    return refs, components


_SSE = "text/event-stream"
_STREAMED = {
    "/v1/chat/completions": (
        "With `stream: true`: server-sent events, one `data:` line per chunk, then `data: [DONE]`"
    ),
    "/v1/chat": (
        "With `stream: true`: server-sent events named by `event:` (`context` first, as "
        "soon as retrieval is done; `chunk`; `metadata`; `error` on a failure once "
        "streaming), each with its object as `data:`, then `data: [DONE]`"
    ),
    "/v1/completions": (
        "With `stream: true`: server-sent events, one `data:` line per `text_completion` "
        "chunk, then `data: [DONE]`"
    ),
    "/v1/messages": (
        "With `stream: true`: Anthropic's server-sent events, each named by `event:` "
        "(`message_start`, `content_block_start`, `content_block_delta`, "
        "`content_block_stop`, `message_delta`, `message_stop`; `error` on a failure once "
        "streaming) with its object as `data:`"
    ),
    "/v1/responses": (
        "With `stream: true`: the Responses API's server-sent events, each named by "
        "`event:` (`response.created` ... `response.completed`, `response.incomplete` "
        "when cut by max_output_tokens; `error` then `response.failed` on a failure once "
        "streaming) with its object as `data:`"
    ),
}


def with_undeclared_media(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with what the handlers read or write themselves, so Litestar cannot
    see it: the bodies ``POST /v1/documents`` accepts (JSON, a batch, a multipart
    upload), the event streams of the chat routes, the Prometheus text of
    ``/metrics``."""
    paths = document.get("paths", {})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    ingest = paths.get("/v1/documents", {}).get("post")
    if ingest is not None:
        (one, many), components = _components(wire.DocumentIn, wire.DocumentsIn)
        for name, schema in components.items():
            schemas.setdefault(name, schema)
        ingest["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [one, many]}},
                "multipart/form-data": {"schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "source": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object"},
                        "scope": {"type": "string", "enum": ["tenant", "global"]},
                    },
                }},
            },
        }  # fmt: skip
    for path in _STREAMED:
        answered = paths.get(path, {}).get("post", {}).get("responses", {}).get("200")
        if answered is not None:
            # One event: its ``data`` is a chunk as JSON, or ``[DONE]``.
            answered.setdefault("content", {})[_SSE] = {
                "schema": {
                    "type": "object",
                    "description": _STREAMED[path],
                    "required": ["data"],
                    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
                }
            }
    metrics = paths.get("/metrics", {}).get("get", {}).get("responses", {}).get("200")
    if metrics is not None:
        metrics.setdefault("content", {})["text/plain"] = {
            "schema": {
                "type": "string",
                "description": "Prometheus exposition format, with `Accept: text/plain`",
            }
        }
    return document


def access_by_operation(app: Litestar) -> dict[tuple[str, str], str]:
    """(method, path) → the lowest tier allowed, read from each route's ``requires``
    guards (``standard`` for a keyed route without one), or ``none`` for the public
    paths."""
    access: dict[tuple[str, str], str] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            tiers = [
                capability.minimum_tier
                for guard in handler.resolve_guards()
                if isinstance(
                    capability := inspect.getclosurevars(guard).nonlocals.get("capability"),
                    Capability,
                )
            ]
            public = any(re.match(p, route.path_format) for p in PUBLIC_PATHS)
            for method in handler.http_methods:
                key = (method.lower(), route.path_format)
                if public:
                    access[key] = "none"
                else:
                    access[key] = max(tiers).label if tiers else Capability.CHAT.minimum_tier.label
    return access


def with_security(document: dict[str, Any], access: dict[tuple[str, str], str]) -> dict[str, Any]:
    """``document`` with the bearer scheme (so Swagger UI has an Authorize button) on
    every operation that needs a key, the tier it needs named in its description and
    in ``x-required-tier``."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`. Each operation names "
        "the lowest tier (standard < developer < admin) it accepts.",
    }
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            tier = access.get((method, path))
            if not isinstance(operation, dict) or tier is None or tier == "none":
                continue
            operation["security"] = [{BEARER: []}]
            operation["x-required-tier"] = tier
            needs = f"Needs a key of tier **{tier}** or above."
            described = operation.get("description")
            operation["description"] = f"{described}\n\n{needs}" if described else needs
    return document

"""What the OpenAPI schema says of error answers, shared by the controllers, and the
bounds of the wire format that Litestar's schema leaves out."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar.openapi import ResponseSpec

from adapters.http import wire
from adapters.http.wire import ErrorResponse

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
        for value in vars(wire).values()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == wire.__name__
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

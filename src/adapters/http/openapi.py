"""What the OpenAPI schema says of error answers, shared by the controllers."""

from __future__ import annotations

from litestar.openapi import ResponseSpec

from adapters.http.wire import ErrorResponse


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

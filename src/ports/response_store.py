"""Stored responses of the Responses API (``store: true``), for ``previous_response_id``
and ``GET``/``DELETE /v1/responses/{id}``."""

from __future__ import annotations

from typing import Any, Protocol


class ResponseStore(Protocol):
    """Responses by id, scoped to a tenant: another tenant's id is not found. A record
    is a JSON-serialisable mapping (the Response object and the conversation that
    continues it), kept for the store's time to live. Errors: ``BackendUnavailable``."""

    async def save(self, tenant: str, response_id: str, record: dict[str, Any]) -> None: ...

    async def get(self, tenant: str, response_id: str) -> dict[str, Any] | None: ...

    async def delete(self, tenant: str, response_id: str) -> bool:
        """True when there was one to delete."""
        ...

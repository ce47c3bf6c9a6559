"""``/v1/memories``: a user's long-term memories, scoped to the caller's tenant."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import Parameter

from adapters.http.auth import requires
from adapters.http.controllers.unified_chat import iso
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import (
    Deleted,
    Forgotten,
    MemoryHitOut,
    MemoryIn,
    MemoryOut,
    MemoryPage,
    MemorySearchIn,
    MemorySearchOut,
    MemoryUpdateIn,
)
from application.memories import Memories
from domain.memory import MAX_USER_ID, Memory
from domain.principal import Capability

UserIdParam = Parameter(
    query="user_id", min_length=1, max_length=MAX_USER_ID, description="whose memories"
)


def memory_out(m: Memory) -> MemoryOut:
    return MemoryOut(
        id=m.id,
        user_id=m.user_id,
        text=m.text,
        timestamp=iso(m.created_at),
        metadata=dict(m.metadata),
    )


class MemoriesController(Controller):
    path = "/v1/memories"
    tags = ["memories"]
    guards = [requires(Capability.MANAGE_OWN_MEMORIES), admitted]

    @get(
        "", summary="List a user's memories, newest first", responses=error_responses(400, 401, 503)
    )
    async def list_memories(
        self,
        request: Request[Any, Any, Any],
        memories: Memories,
        user_id: str = UserIdParam,
        limit: int = Parameter(default=20, ge=1, le=100),
        after: str | None = None,
    ) -> MemoryPage:
        page = await memories.list(request.user.tenant, user_id, limit, after)
        return MemoryPage(data=[memory_out(m) for m in page.data], has_more=page.has_more)

    @post("", status_code=201, summary="Add a memory now", responses=error_responses(400, 401, 503))
    async def add(
        self, request: Request[Any, Any, Any], data: MemoryIn, memories: Memories
    ) -> MemoryOut:
        memory = await memories.add_now(
            request.user.tenant, data.user_id, data.text, dict(data.metadata)
        )
        return memory_out(memory)

    @post(
        "/search",
        status_code=200,
        summary="Search a user's memories (what the chat would see)",
        responses=error_responses(400, 401, 503),
    )
    async def search(
        self, request: Request[Any, Any, Any], data: MemorySearchIn, memories: Memories
    ) -> MemorySearchOut:
        hits = await memories.recall(request.user.tenant, data.user_id, data.query, data.limit)
        return MemorySearchOut(
            data=[
                MemoryHitOut(
                    id=h.id,
                    text=h.text,
                    score=round(h.score, 4),
                    similarity=round(h.similarity, 4),
                    timestamp=iso(h.timestamp),
                )
                for h in hits
            ]
        )

    @get("/{memory_id:str}", summary="Get a memory", responses=error_responses(400, 401, 404, 503))
    async def get_memory(
        self,
        request: Request[Any, Any, Any],
        memory_id: str,
        memories: Memories,
        user_id: str = UserIdParam,
    ) -> MemoryOut:
        return memory_out(await memories.get(request.user.tenant, user_id, memory_id))

    @put(
        "/{memory_id:str}",
        summary="Correct a memory's text",
        responses=error_responses(400, 401, 404, 503),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        memory_id: str,
        data: MemoryUpdateIn,
        memories: Memories,
    ) -> MemoryOut:
        return memory_out(
            await memories.update(request.user.tenant, data.user_id, memory_id, data.text)
        )

    @delete(
        "/{memory_id:str}",
        status_code=200,
        summary="Delete a memory",
        responses=error_responses(400, 401, 404, 503),
    )
    async def delete_memory(
        self,
        request: Request[Any, Any, Any],
        memory_id: str,
        memories: Memories,
        user_id: str = UserIdParam,
    ) -> Deleted:
        await memories.delete(request.user.tenant, user_id, memory_id)
        return Deleted(id=memory_id, object="memory")

    @delete(
        "",
        status_code=200,
        summary="Forget a user entirely",
        responses=error_responses(400, 401, 503),
    )
    async def forget(
        self, request: Request[Any, Any, Any], memories: Memories, user_id: str = UserIdParam
    ) -> Forgotten:
        deleted = await memories.forget(request.user.tenant, user_id)
        return Forgotten(user_id=user_id, deleted=deleted)

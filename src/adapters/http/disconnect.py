"""A non-streamed answer is cancelled when its client goes away: retrieval and
generation (and the upstream request) stop instead of running for nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from litestar import Request
from litestar.exceptions import HTTPException

T = TypeVar("T")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for it; logged, never sent (nobody listens)


async def unless_disconnected(request: Request[Any, Any, Any], work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it and answer 499."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        # The body is read: the next ASGI message is the disconnect, whenever it comes.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise HTTPException(
                status_code=CLIENT_CLOSED_REQUEST, detail="the client closed the request"
            ) from None
        raise
    finally:
        watcher.cancel()

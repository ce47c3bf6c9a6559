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
# Watching costs two receive() calls (granian: a tenth of a fast request's CPU), and
# an answer done sooner than this saves next to nothing by being cancelled: the watch
# starts then. A client gone before is noticed then too (its disconnect is waiting).
WATCH_AFTER_S = 0.05


async def unless_disconnected(request: Request[Any, Any, Any], work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it and answer 499."""
    task = asyncio.ensure_future(work)
    receive = request.receive
    disconnected = False
    pending: asyncio.Future[Any] | None = None

    # The body is read: the next ASGI message is the disconnect, whenever it comes. A
    # callback waits for it, not a task (with granian, receive() gives a future).
    def watch() -> None:
        nonlocal pending
        pending = asyncio.ensure_future(receive())
        pending.add_done_callback(received)

    def received(message: asyncio.Future[Any]) -> None:
        nonlocal disconnected
        if task.done() or message.cancelled() or message.exception() is not None:
            return
        if message.result()["type"] != "http.disconnect":
            watch()
            return
        disconnected = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, watch)
    try:
        return await task
    except asyncio.CancelledError:
        if disconnected:
            raise HTTPException(
                status_code=CLIENT_CLOSED_REQUEST, detail="the client closed the request"
            ) from None
        raise
    finally:
        timer.cancel()
        if pending is not None and not pending.done():
            pending.cancel()

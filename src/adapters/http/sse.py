"""Server-sent events to the client: each payload relayed the moment it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec

from adapters.http.errors import status_and_body
from domain.errors import GatewayError, UpstreamUnavailable

# No buffering anywhere between the upstream and the client, proxies included.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE_EVENT = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def event(payload: bytes, name: str | None = None) -> bytes:
    """One server-sent event; ``name`` is its ``event:`` field (none: a ``message``)."""
    data = b"data: " + payload + b"\n\n"
    return b"event: " + name.encode() + b"\n" + data if name else data


async def first_chunk(chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]) -> bytes:
    """Wait for the first chunk, so that an upstream failing at once is still an HTTP
    error (the status is not sent yet)."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        await close()
        raise UpstreamUnavailable(
            "the inference upstream ended the stream without a chunk"
        ) from None
    except BaseException:
        await close()
        raise


async def relay(
    first: bytes,
    chunks: AsyncIterator[bytes],
    close: Callable[[], Awaitable[None]],
    *,
    before: bytes = b"",
    after: Callable[[], Awaitable[bytes]] | None = None,
) -> AsyncIterator[bytes]:
    """``before``, the chunks, then ``after()`` and ``[DONE]``. A failure once the
    status is sent becomes an error event, as OpenAI does; closing the generator (the
    client went away) closes the upstream."""
    try:
        if before:
            yield before
        yield event(first)
        async for payload in chunks:
            yield event(payload)
    except GatewayError as exc:
        _, body = status_and_body(exc)
        yield event(_encode(body))
        return
    finally:
        await close()
    if after is not None:
        yield await after()
    yield DONE_EVENT

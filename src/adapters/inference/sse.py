"""Server-sent events, split from a byte stream without re-encoding the payloads."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

DONE = b"[DONE]"


async def sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the ``data`` of each event as soon as its closing blank line arrives.

    Multi-line data is joined with ``\\n`` as the SSE spec says; comments, ``event:``
    and ``id:`` lines are ignored; ``[DONE]`` ends the stream."""
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    payload = b"\n".join(data)
                    data = []
                    if payload == DONE:
                        return
                    yield payload
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        payload = b"\n".join(data)
        if payload != DONE:
            yield payload

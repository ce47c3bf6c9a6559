"""sse_data: event payloads out of an arbitrarily chunked byte stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from adapters.inference.sse import sse_data

EVENTS = [b'{"a":1}', b'{"b":"two words"}', b'{"c":[3]}']
LF_STREAM = b"".join(b"data: " + e + b"\n\n" for e in EVENTS)
CRLF_STREAM = b"".join(b"data: " + e + b"\r\n\r\n" for e in EVENTS)


async def chunked(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def events(*parts: bytes) -> list[bytes]:
    return [payload async for payload in sse_data(chunked(parts))]


@pytest.mark.parametrize("stream", [LF_STREAM, CRLF_STREAM], ids=["lf", "crlf"])
async def test_every_split_point_yields_the_same_events(stream: bytes) -> None:
    for cut in range(len(stream) + 1):
        assert await events(stream[:cut], stream[cut:]) == EVENTS, f"split at {cut}"


@pytest.mark.parametrize("stream", [LF_STREAM, CRLF_STREAM], ids=["lf", "crlf"])
async def test_one_byte_at_a_time_yields_the_same_events(stream: bytes) -> None:
    assert await events(*(stream[i : i + 1] for i in range(len(stream)))) == EVENTS


async def test_an_event_is_yielded_as_soon_as_its_blank_line_arrives() -> None:
    pulled: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        for part in (b"data: first\n\n", b"data: second\n\n"):
            pulled.append(part)
            yield part

    iterator = sse_data(source())

    assert await anext(iterator) == b"first"
    assert pulled == [b"data: first\n\n"]
    await iterator.aclose()


async def test_comments_event_id_and_retry_lines_are_ignored() -> None:
    stream = b": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: x\n\n: bye\n\n"

    assert await events(stream) == [b"x"]


async def test_multi_line_data_is_joined_with_newlines() -> None:
    assert await events(b"data: one\ndata: two\r\ndata:three\n\n") == [b"one\ntwo\nthree"]


async def test_done_ends_the_stream_and_later_events_are_not_yielded() -> None:
    stream = b"data: before\n\ndata: [DONE]\n\ndata: after\n\n"

    assert await events(stream) == [b"before"]


async def test_done_stops_reading_the_source() -> None:
    pulled: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        for part in (b"data: x\n\ndata: [DONE]\n\n", b"data: late\n\n"):
            pulled.append(part)
            yield part

    assert [p async for p in sse_data(source())] == [b"x"]
    assert len(pulled) == 1


async def test_payload_bytes_are_yielded_exactly_as_sent() -> None:
    payload = '{"text": "caf\u00e9  \u2014 \\u00e9" ,"n" : 1.50}'.encode()

    assert await events(b"data: " + payload + b"\n\n") == [payload]


async def test_only_one_space_after_the_colon_is_removed() -> None:
    assert await events(b"data:x\n\ndata:  y\n\n") == [b"x", b" y"]


async def test_a_blank_line_without_data_yields_nothing() -> None:
    assert await events(b"\n\n\r\n: c\n\n") == []

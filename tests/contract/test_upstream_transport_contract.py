"""The upstream transports behave alike under httpx's API: bodies whole and in pieces,
connections kept alive and not reused when they cannot be, failures as httpx errors."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from adapters.inference.http_client import UpstreamClient
from adapters.inference.keepalive import _Connection
from adapters.inference.openai_compatible import OpenAICompatibleChatModel
from tests.conftest import free_port
from tests.contract.conftest import TRANSPORTS, transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    """A raw HTTP/1.1 server on loopback; each request's answer is written by a test."""

    answer: Handler
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                await self.answer(reader, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def ok(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(ok)
    listener = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    yield state
    listener.close()


@pytest.fixture(params=TRANSPORTS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport(request.param), timeout=2.0) as http:
        yield http


async def test_connections_are_kept_alive(server: Server, client: httpx.AsyncClient) -> None:
    for _ in range(5):
        response = await client.post(f"{server.url}/v1/x?a=1", content=b'{"q": 1}')
        assert (response.status_code, response.text) == (200, "hello")
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n")
    assert first.endswith(b'\r\n\r\n{"q": 1}')


async def test_concurrent_requests_get_connections_of_their_own(
    server: Server, client: httpx.AsyncClient
) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await ok(reader, writer)

    server.answer = slow
    answers = await asyncio.gather(*(client.get(server.url) for _ in range(4)))
    assert [a.text for a in answers] == ["hello"] * 4
    assert server.connections == 4
    await client.get(server.url)
    assert server.connections == 4  # the idle ones are reused


async def test_a_chunked_body_streams_piece_by_piece(
    server: Server, client: httpx.AsyncClient
) -> None:
    release = asyncio.Event()

    async def chunked(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\nfirst \r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")

    server.answer = chunked
    async with client.stream("GET", server.url) as response:
        pieces = response.aiter_bytes()
        # The first piece arrives while the server still holds the rest back.
        assert await anext(pieces) == b"first "
        release.set()
        assert b"".join([piece async for piece in pieces]) == b"second"
    assert (await client.get(server.url)).text == "first second"
    assert server.connections == 1


async def test_connection_close_is_not_reused(server: Server, client: httpx.AsyncClient) -> None:
    async def closing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server.answer = closing
    assert [(await client.get(server.url)).text for _ in range(3)] == ["ok"] * 3
    assert server.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    server: Server, client: httpx.AsyncClient
) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def remember(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await ok(reader, writer)

    server.answer = remember
    await client.get(server.url)
    writers[0].close()
    await asyncio.sleep(0.05)
    assert (await client.get(server.url)).text == "hello"
    assert server.connections == 2


async def test_a_response_cut_short_is_an_error_not_a_short_body(
    server: Server, client: httpx.AsyncClient
) -> None:
    async def cut(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    server.answer = cut
    # httpx's own transport says RemoteProtocolError, aiohttp's ReadError.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.get(server.url)
    server.answer = ok
    assert (await client.get(server.url)).text == "hello"


async def test_silence_is_a_read_timeout(server: Server, client: httpx.AsyncClient) -> None:
    async def silent(_: asyncio.StreamReader, __: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)

    server.answer = silent
    with pytest.raises(httpx.ReadTimeout):
        await client.get(server.url, timeout=httpx.Timeout(2.0, read=0.1))


async def test_a_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    # httpx_aiohttp maps aiohttp's ClientConnectorError to ConnectTimeout.
    with pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
        await client.get(f"http://127.0.0.1:{free_port()}/")


async def test_a_large_request_body_arrives_whole(
    server: Server, client: httpx.AsyncClient
) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB
    await client.post(server.url, content=payload)
    assert server.requests[0].endswith(payload)


async def test_a_generated_request_body_is_sent_chunked(
    server: Server, client: httpx.AsyncClient
) -> None:
    seen: list[bytes] = []

    async def read_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (size := int((await reader.readline()).strip(), 16)) > 0:
            seen.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readexactly(2)
        await ok(reader, writer)

    async def parts() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    server.answer = read_chunked
    assert (await client.post(server.url, content=parts())).text == "hello"
    assert b"".join(seen) == b"one,two"


async def test_the_pool_bounds_open_connections(server: Server) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        await ok(reader, writer)

    server.answer = slow
    for name in TRANSPORTS:
        server.connections = 0
        bounded = transport(name, max_connections=1)
        async with httpx.AsyncClient(transport=bounded) as http:
            held = asyncio.create_task(http.get(server.url))
            await asyncio.sleep(0.05)
            # aiohttp's pool says ConnectTimeout (it waits for a connection).
            with pytest.raises((httpx.PoolTimeout, httpx.ConnectTimeout)):
                await http.get(server.url, timeout=httpx.Timeout(2.0, pool=0.05))
            assert (await held).text == "hello"
            assert (await http.get(server.url)).text == "hello"
        assert server.connections == 1, name


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_the_upstream_client_sends_back_a_cookie_it_was_given(
    server: Server, name: str
) -> None:
    async def setting(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: lb=node-2\r\nContent-Length: 0\r\n\r\n")

    async with UpstreamClient(transport=transport(name)) as http:
        await http.get(server.url)  # no cookie yet
        server.answer = setting
        await http.get(server.url)
        server.answer = ok
        request = http.build_request("GET", server.url)
        await http.send(request)
    assert b"cookie:" not in server.requests[0].lower()
    assert b"\r\ncookie: lb=node-2\r\n" in server.requests[2].lower()
    assert dict(http.cookies) == {"lb": "node-2"}


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_compressed_stream_reaches_the_adapter_decoded(server: Server, name: str) -> None:
    chunk = {"object": "chat.completion.chunk", "model": "m", "choices": []}
    events = b"".join(
        b"data: %s\n\n"
        % json.dumps(
            {**chunk, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": f}]}
        ).encode()
        for t, f in (("Hel", None), ("lo", "stop"))
    )
    packed = gzip.compress(events + b"data: [DONE]\n\n")

    async def compressed(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(packed), packed)
        )

    server.answer = compressed
    async with UpstreamClient(transport=transport(name)) as http:
        model = OpenAICompatibleChatModel(f"{server.url}/v1", http)
        stream = await model.stream({"model": "m", "messages": [], "stream": True})
        payloads = [json.loads(p) async for p in stream]
    assert [p["choices"][0]["delta"]["content"] for p in payloads] == ["Hel", "lo"]
    assert stream.content == "Hello"


async def test_a_connection_closed_before_its_request_fails_at_once(server: Server) -> None:
    # The keep-alive transport's own guard: a connection that died between being
    # handed out and being written to must not wait for an answer that cannot come.
    loop = asyncio.get_running_loop()
    host, port = server.url.removeprefix("http://").split(":")
    _, conn = await loop.create_connection(_Connection, host, int(port))
    conn.close()
    request = httpx.Request("GET", server.url)
    with pytest.raises(httpx.RemoteProtocolError):
        await asyncio.wait_for(conn.send(b"GET / HTTP/1.1\r\n\r\n", request, None), 1)

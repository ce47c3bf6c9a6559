"""The gateway's real app, from the real composition root, served in this process by
Litestar's test client: the route tests' fast tier (no server process to start).

``in_process_gateway(env, tmp)`` reads ``env`` as ``gateway serve`` reads the
environment, builds the container (``override`` may replace any of its parts first),
runs the app's lifespan and yields an ``InProcessGateway``: the suites' clients
(``tests.e2e.clients.api_client``) reach it as they reach a ``GatewayProcess``. What
needs a process stays on processes: signals, the access log, timing of a relay over a
socket, the SDKs against a real port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
from litestar.testing import TestClient
from litestar.testing.transport import TestClientTransport

from gateway.asgi import build
from gateway.container import Container
from gateway.settings import Settings, load_settings

IN_PROCESS_URL = "http://gateway.test"


@dataclass
class InProcessGateway:
    client: TestClient  # type: ignore[type-arg]
    container: Container
    settings: Settings
    url: str = IN_PROCESS_URL

    def transport(self) -> httpx.BaseTransport:
        """A transport into the running app, for an ``httpx.Client`` of one's own."""
        return _IntoTheApp(self.client)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """The same for an ``httpx.AsyncClient``: requests sent together are served
        together (each waits on a thread of its own for the app's loop)."""
        return _IntoTheAppAsync(self.client)


class _IntoTheApp(httpx.BaseTransport):
    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        # Exceptions the app lets escape fail the test (a real server would answer 500).
        self._inner = TestClientTransport(client=client, raise_server_exceptions=True)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)


class _IntoTheAppAsync(httpx.AsyncBaseTransport):
    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self._sync = _IntoTheApp(client)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await asyncio.to_thread(self._sync.handle_request, request)


@contextlib.contextmanager
def in_process_gateway(
    env: Mapping[str, str],
    tmp: Path,
    *,
    override: Callable[[Container], None] | None = None,
) -> Iterator[InProcessGateway]:
    """``env`` as the environment of ``gateway serve`` (data under ``tmp``)."""
    settings = load_settings({"GATEWAY_DATA_DIR": str(tmp / "data"), **env}, dotenv=None)
    container = Container(settings=settings)
    if override is not None:
        override(container)
    app = build(settings, container)
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(
                TestClient(app, base_url=IN_PROCESS_URL, raise_server_exceptions=True)  # type: ignore[type-var]
            )
        except BaseExceptionGroup as group:
            # A start refused (a ConfigurationError...) as the server would say it.
            raise _first(group) from None
        yield InProcessGateway(client, container, settings)


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


@contextlib.contextmanager
def in_process_pair(
    env: Mapping[str, str], tmp_path_factory: Any, name: str
) -> Iterator[tuple[InProcessGateway, InProcessGateway]]:
    """Two instances of the app on one ``env`` (one Redis: limits, keys, usage shared),
    each from a container of its own."""
    with (
        in_process_gateway(env, tmp_path_factory.mktemp(f"{name}-a")) as first,
        in_process_gateway(env, tmp_path_factory.mktemp(f"{name}-b")) as second,
    ):
        yield first, second


# --- the official SDKs (built on httpx2) driving the app in process -------------------


class _Httpx2IntoTheApp(httpx2.BaseTransport):
    """The official SDKs speak httpx2, whose objects are not httpx's: each request is
    handed to the app's httpx transport as it is and the answer handed back as it came
    (its bytes still encoded: the SDK's client decodes them)."""

    def __init__(self, gateway: InProcessGateway) -> None:
        self._inner = gateway.transport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        answer = self._inner.handle_request(
            httpx.Request(request.method, str(request.url), headers=request.headers.raw,
                          content=request.read())
        )  # fmt: skip
        try:
            body = b"".join(answer.iter_raw())
        finally:
            answer.close()
        return httpx2.Response(
            answer.status_code, headers=answer.headers.raw, content=body, request=request
        )


def into(gateway: InProcessGateway) -> httpx2.Client:
    """An SDK's ``http_client`` (closed with the SDK's client): its requests go to the
    app in process, through the SDK's own httpx2 client as without one."""
    return httpx2.Client(transport=_Httpx2IntoTheApp(gateway))


def anthropic_client(gateway: InProcessGateway, **options: Any) -> anthropic.Anthropic:
    """The official Anthropic SDK driving the app in process."""
    return anthropic.Anthropic(
        base_url=gateway.url, max_retries=0, timeout=30, http_client=into(gateway), **options
    )


def openai_client(gateway: InProcessGateway, **options: Any) -> openai.OpenAI:
    """The official OpenAI SDK driving the app in process."""
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", max_retries=0, timeout=30, http_client=into(gateway),
        **options,
    )  # fmt: skip

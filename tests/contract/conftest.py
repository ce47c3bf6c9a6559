"""Adapters of each port, as the contract suites receive them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from adapters.inference.keepalive import KeepAliveTransport
from adapters.inference.llama_embedded import EmbeddedLlamaChatModel, LlamaPromptCounter
from adapters.inference.llama_server import LlamaCppServerProcess, locate_smollm2
from adapters.inference.openai_compatible import OpenAICompatibleChatModel
from adapters.inference.resilient_chat_model import ResilientChatModel
from domain.circuit import CircuitBreaker
from ports.chat_model import ChatModel
from tests.conftest import FakeUpstream
from tests.fakes.fake_chat_model import FakeChatModel


@dataclass
class ChatModelUnderTest:
    adapter: ChatModel
    model: str
    # What this adapter adds to the shared contract; a test of an optional feature
    # names the feature and runs where it is offered.
    features: set[str] = field(default_factory=set)


@pytest.fixture(scope="session")
async def llama_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LlamaCppServerProcess]:
    """The real ``python -m llama_cpp.server`` on the embedded GGUF, supervised by the
    adapter that the gateway uses for its embedded model."""
    server = LlamaCppServerProcess(
        locate_smollm2(), log_path=tmp_path_factory.mktemp("llama") / "server.log", context=2048
    )
    await server.start()
    yield server
    await server.stop()


def transport(name: str, max_connections: int = 100) -> httpx.AsyncBaseTransport:
    """The gateway's two upstream transports: aiohttp's pool (TLS, proxies) and the
    lean keep-alive one (plain HTTP)."""
    if name == "aiohttp":
        return AiohttpTransport(limits=httpx.Limits(max_connections=max_connections))
    return KeepAliveTransport(max_connections=max_connections)


TRANSPORTS = ["aiohttp", "keepalive"]


@pytest.fixture(params=TRANSPORTS)
async def http_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """Each transport in turn (for tests that take the client directly)."""
    async with httpx.AsyncClient(transport=transport(request.param)) as client:
        yield client


@pytest.fixture
async def keepalive_client() -> AsyncIterator[httpx.AsyncClient]:
    """What the gateway uses for plain-HTTP upstreams."""
    async with httpx.AsyncClient(transport=transport("keepalive")) as client:
        yield client


@pytest.fixture
async def aiohttp_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport("aiohttp")) as client:
        yield client


@pytest.fixture
def fake_chat_model() -> ChatModelUnderTest:
    return ChatModelUnderTest(
        FakeChatModel(), "fake-model", {"stream_usage", "openai_message_forms"}
    )


@pytest.fixture
def fake_upstream_chat_model(
    fake_upstream: FakeUpstream, keepalive_client: httpx.AsyncClient
) -> ChatModelUnderTest:
    adapter = OpenAICompatibleChatModel(fake_upstream.url, keepalive_client, timeout_s=30)
    return ChatModelUnderTest(adapter, "fake-model", {"stream_usage", "openai_message_forms"})


@pytest.fixture
def resilient_fake_upstream_chat_model(
    fake_upstream: FakeUpstream, keepalive_client: httpx.AsyncClient
) -> ChatModelUnderTest:
    """As the gateway builds an upstream: inside turns, retries and a circuit breaker."""
    adapter = ResilientChatModel(
        OpenAICompatibleChatModel(fake_upstream.url, keepalive_client, timeout_s=30),
        timeout_s=30,
        concurrency=4,
        max_in_flight=16,
        breaker=CircuitBreaker(),
    )
    return ChatModelUnderTest(adapter, "fake-model", {"stream_usage", "openai_message_forms"})


@pytest.fixture
def fake_upstream_aiohttp_chat_model(
    fake_upstream: FakeUpstream, aiohttp_client: httpx.AsyncClient
) -> ChatModelUnderTest:
    adapter = OpenAICompatibleChatModel(fake_upstream.url, aiohttp_client, timeout_s=30)
    return ChatModelUnderTest(adapter, "fake-model", {"stream_usage", "openai_message_forms"})


@pytest.fixture
def llama_server_chat_model(
    llama_server: LlamaCppServerProcess, keepalive_client: httpx.AsyncClient
) -> ChatModelUnderTest:
    adapter = OpenAICompatibleChatModel(
        llama_server.base_url, keepalive_client, health_name="embedded_model", timeout_s=60
    )
    # llama_cpp.server ignores stream_options: no usage chunk from it directly.
    return ChatModelUnderTest(adapter, llama_server.alias, set())


@pytest.fixture
def embedded_chat_model(
    llama_server: LlamaCppServerProcess, keepalive_client: httpx.AsyncClient
) -> ChatModelUnderTest:
    """As the gateway builds it: one generation at a time, plain messages."""
    plain = ResilientChatModel(
        OpenAICompatibleChatModel(
            llama_server.base_url,
            keepalive_client,
            health_name="embedded_model",
            timeout_s=60,
            plain_messages=True,
        ),
        concurrency=1,
        max_in_flight=8,
        timeout_s=60,
    )
    embedded = EmbeddedLlamaChatModel(
        plain, LlamaPromptCounter(locate_smollm2()), llama_server, timeout_s=60
    )
    return ChatModelUnderTest(
        embedded,
        llama_server.alias,
        {"stream_usage", "refuses_unsupported", "openai_message_forms"},
    )


@pytest.fixture(
    params=[
        pytest.param("fake_chat_model", id="fake"),
        pytest.param("fake_upstream_chat_model", id="openai-compatible:fake-upstream"),
        pytest.param(
            "fake_upstream_aiohttp_chat_model", id="openai-compatible:fake-upstream:aiohttp"
        ),
        pytest.param(
            "resilient_fake_upstream_chat_model", id="resilient:openai-compatible:fake-upstream"
        ),
        pytest.param(
            "llama_server_chat_model",
            id="openai-compatible:llama.cpp-server",
            marks=pytest.mark.llama,
        ),
        pytest.param("embedded_chat_model", id="embedded:llama.cpp", marks=pytest.mark.llama),
    ]
)
def chat_model(request: pytest.FixtureRequest) -> ChatModelUnderTest:
    """Every ChatModel adapter, as the contract suite receives it."""
    under_test: ChatModelUnderTest = request.getfixturevalue(request.param)
    return under_test

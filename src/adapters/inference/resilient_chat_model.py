"""``ResilientChatModel``: any ``ChatModel`` with turns, retries and a circuit breaker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, Unpack

from adapters.inference.resilience import Resilience, ResilienceOptions, Verdicts
from adapters.inference.stream_relay import StreamAround
from adapters.inference.transport_errors import RetryableOverloaded
from adapters.inference.turns import Turns
from domain.chat import Completion, ModelCard, Usage
from domain.errors import UpstreamOverloaded, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from domain.health import ServiceHealth
from ports.chat_model import ChatModel, ChatStream, TextCompletionModel

CHAT_VERDICTS = Verdicts(
    server="inference upstream",
    # The upstream's own 429/503 counts against it; the gateway's full queue does not.
    failures=(UpstreamUnavailable, UpstreamTimeout, RetryableOverloaded),
    # It answered (and a 500 was vouched for as this request's fault): it works.
    answered=(UpstreamRejected,),
    refused=UpstreamOverloaded,
)


class UpstreamChatModel(ChatModel, TextCompletionModel, Protocol):
    health_name: str


class _HeldStream(StreamAround):
    """The inner stream, holding its turn until it is closed or ends."""

    def __init__(self, inner: ChatStream, leave: Callable[[], None]) -> None:
        super().__init__(inner)
        self._leave = leave
        self._closed = False

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    @usage.setter
    def usage(self, value: Usage | None) -> None:
        self._inner.usage = value

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for payload in self._inner:
                yield payload
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._leave()
            await self._inner.aclose()


class ResilientChatModel:
    """``inner`` behind ``Turns`` (``max_in_flight``, ``concurrency``, each wait bounded
    by ``timeout_s``) and ``Resilience`` (``resilience``: its options; the retry budget
    at most ``timeout_s``). A stream holds its turn until it is closed; retries
    happen before it is returned, never once it has started."""

    def __init__(
        self,
        inner: UpstreamChatModel,
        *,
        max_in_flight: int | None = None,
        concurrency: int | None = None,
        timeout_s: float = 120.0,
        **resilience: Unpack[ResilienceOptions],
    ) -> None:
        self._inner = inner
        self.name = inner.name
        self.health_name = inner.health_name
        self._turns = Turns(
            f"inference upstream {inner.name}",
            max_in_flight=max_in_flight,
            concurrency=concurrency,
            timeout_s=timeout_s,
        )
        # Retries never outlast what one attempt may take.
        options: ResilienceOptions = {**resilience}
        options["retry_budget_s"] = min(resilience.get("retry_budget_s", 10.0), timeout_s)
        self._resilience = Resilience(inner.name, CHAT_VERDICTS, **options)

    @property
    def in_flight(self) -> int:
        return self._turns.in_flight

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn (none without a ``concurrency``)."""
        return self._turns.waiting

    @property
    def accepting(self) -> bool:
        return self._resilience.accepting

    async def _in_turn(self, send: Callable[[], Awaitable[Completion]]) -> Completion:
        await self._turns.enter()
        try:
            return await send()
        finally:
            self._turns.leave()

    async def _stream_in_turn(self, send: Callable[[], Awaitable[ChatStream]]) -> ChatStream:
        await self._turns.enter()
        try:
            stream = await send()
        except BaseException:
            self._turns.leave()
            raise
        return _HeldStream(stream, self._turns.leave)

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        inner = self._inner
        return await self._resilience.run(lambda: self._in_turn(lambda: inner.complete(body)))

    async def stream(self, body: Mapping[str, Any]) -> ChatStream:
        """Returns once the upstream accepted the request (retries happen before)."""
        inner = self._inner
        return await self._resilience.run(lambda: self._stream_in_turn(lambda: inner.stream(body)))

    async def complete_text(self, body: Mapping[str, Any]) -> Completion:
        inner = self._inner
        return await self._resilience.run(lambda: self._in_turn(lambda: inner.complete_text(body)))

    async def stream_text(self, body: Mapping[str, Any]) -> ChatStream:
        inner = self._inner
        return await self._resilience.run(
            lambda: self._stream_in_turn(lambda: inner.stream_text(body))
        )

    async def list_models(self) -> Sequence[ModelCard]:
        return await self._inner.list_models()

    async def check(self) -> ServiceHealth:
        """The upstream's health, degraded while its circuit is open."""
        return self._resilience.health(await self._inner.check())

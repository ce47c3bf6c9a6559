"""OpenAI-compatible chat completions through the routed upstream(s)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from application.model_router import ModelRouter
from domain.chat import ChatRequest, Completion
from domain.errors import TextCompletionsUnsupported, UpstreamOverloaded, UpstreamUnavailable
from ports.chat_model import ChatModel, ChatStream, ResponsesModel, TextCompletionModel
from ports.telemetry import Telemetry

T = TypeVar("T")
U = TypeVar("U", bound=ChatModel | TextCompletionModel | ResponsesModel)


class ChatCompletions:
    """Routes a request to its model's upstreams and relays the answer untouched. When
    several upstreams serve the model, one that is unreachable or overloaded before
    answering is skipped for the next (failover); a timeout is not (the request may be
    running there)."""

    def __init__(
        self,
        router: ModelRouter,
        telemetry: Telemetry | None = None,
        responses: Sequence[ResponsesModel] = (),
    ) -> None:
        self._router = router
        self._telemetry = telemetry
        # The upstreams serving /v1/responses themselves, by their chat adapter's name.
        self._responses = {r.name: r for r in responses}

    async def _first_answering(
        self, model: str, upstreams: list[U], call: Callable[[U], Awaitable[T]]
    ) -> T:
        for number, upstream in enumerate(upstreams, 1):
            try:
                return await call(upstream)
            except (UpstreamUnavailable, UpstreamOverloaded) as exc:
                if number == len(upstreams):
                    raise
                if self._telemetry is not None:
                    self._telemetry.event(
                        "failover",
                        model,
                        from_upstream=str(getattr(upstream, "name", "")),
                        reason=exc.message,
                    )
        raise AssertionError("a model is routed to at least one upstream")

    async def resolve(self, requested: str | None) -> str:
        """The model a request naming ``requested`` is served by (``ModelNotFound``
        when none is)."""
        model, _ = await self._router.route(requested)
        return model

    async def complete(self, request: ChatRequest) -> Completion:
        model, upstreams = await self._router.route(request.model)
        body = request.routed_to(model)
        return await self._first_answering(model, upstreams, lambda u: u.complete(body))

    async def stream(self, request: ChatRequest) -> ChatStream:
        """Returns once an upstream accepted the request: routing and upstream errors
        are raised here, before the client has been sent anything."""
        model, upstreams = await self._router.route(request.model)
        body = request.routed_to(model)
        return await self._first_answering(model, upstreams, lambda u: u.stream(body))

    async def _text_upstreams(self, request: ChatRequest) -> tuple[str, list[TextCompletionModel]]:
        model, upstreams = await self._router.route(request.model)
        serving: list[TextCompletionModel] = [
            u for u in upstreams if isinstance(u, TextCompletionModel)
        ]
        if not serving:
            raise TextCompletionsUnsupported(
                f"the upstream serving `{model}` does not serve /v1/completions; "
                "use /v1/chat/completions",
                param="model",
            )
        return model, serving

    async def complete_text(self, request: ChatRequest) -> Completion:
        """Legacy ``/v1/completions`` (``request`` is its body), with the same routing
        and failover as chat; a 400 when no upstream of the model serves it."""
        model, upstreams = await self._text_upstreams(request)
        body = request.routed_to(model)
        return await self._first_answering(model, upstreams, lambda u: u.complete_text(body))

    async def stream_text(self, request: ChatRequest) -> ChatStream:
        model, upstreams = await self._text_upstreams(request)
        body = request.routed_to(model)
        return await self._first_answering(model, upstreams, lambda u: u.stream_text(body))

    async def _responses_upstreams(self, model: str | None) -> tuple[str, list[ResponsesModel]]:
        routed, upstreams = await self._router.route(model)
        serving = [
            self._responses[name]
            for name in (str(getattr(u, "name", "")) for u in upstreams)
            if name in self._responses
        ]
        if not serving:
            raise UpstreamUnavailable(f"no upstream of `{routed}` serves /v1/responses")
        return routed, serving

    async def serves_responses(self, model: str | None) -> bool:
        """Whether an upstream of ``model`` serves ``/v1/responses`` itself."""
        if not self._responses:
            return False
        _, upstreams = await self._router.route(model)
        return any(str(getattr(u, "name", "")) in self._responses for u in upstreams)

    async def respond(self, request: ChatRequest) -> Completion:
        """``/v1/responses`` forwarded (``request`` is its body) to an upstream of the
        model that serves it, with the same failover as chat."""
        model, upstreams = await self._responses_upstreams(request.model)
        body = request.routed_to(model)
        return await self._first_answering(model, upstreams, lambda u: u.respond(body))

    async def stream_response(self, request: ChatRequest) -> ChatStream:
        model, upstreams = await self._responses_upstreams(request.model)
        body = request.routed_to(model)
        return await self._first_answering(model, upstreams, lambda u: u.stream_response(body))

"""OpenAI-compatible chat completions through the routed upstream."""

from __future__ import annotations

from application.model_router import ModelRouter
from domain.chat import ChatRequest, Completion
from ports.chat_model import ChatStream


class ChatCompletions:
    """Routes a request to its model's upstream and relays the answer untouched."""

    def __init__(self, router: ModelRouter) -> None:
        self._router = router

    async def complete(self, request: ChatRequest) -> Completion:
        model, upstream = await self._router.route(request.model)
        return await upstream.complete(request.routed_to(model))

    async def stream(self, request: ChatRequest) -> ChatStream:
        """Returns once the upstream accepted the request: routing and upstream errors
        are raised here, before the client has been sent anything."""
        model, upstream = await self._router.route(request.model)
        return await upstream.stream(request.routed_to(model))

"""``GET /v1/models``: the models the gateway routes."""

from __future__ import annotations

from litestar import Controller, get

from adapters.http.auth import requires
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import Model, ModelList
from application.model_router import ModelRouter
from domain.chat import ModelCard
from domain.errors import ModelNotFound
from domain.principal import Capability


def _wire(card: ModelCard) -> Model:
    return Model(id=card.id, owned_by=card.owned_by, created=card.created)


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["inference"]
    guards = [requires(Capability.READ_MODELS), admitted]

    @get("", summary="List models", responses=error_responses(401, 502))
    async def list_models(self, model_router: ModelRouter) -> ModelList:
        return ModelList(data=[_wire(c) for c in await model_router.models()])

    @get("/{model_id:str}", summary="Retrieve a model", responses=error_responses(401, 404, 502))
    async def get_model(self, model_id: str, model_router: ModelRouter) -> Model:
        for card in await model_router.models():
            if card.id == model_id:
                return _wire(card)
        raise ModelNotFound(model_id)

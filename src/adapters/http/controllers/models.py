"""``GET /v1/models``: every model the gateway serves (chat and embeddings), as the
caller's key may use them."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from adapters.http.auth import requires
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import Model, ModelList
from application.embeddings import CreateEmbeddings
from application.model_router import ModelRouter
from domain.errors import ModelNotAllowed, ModelNotFound
from domain.principal import Capability, Principal

_EMBEDDINGS_OWNER = "gateway"


async def _catalog(router: ModelRouter, embeddings: CreateEmbeddings) -> dict[str, Model]:
    """Every name the gateway answers to → its model object (``id`` the name, ``root``
    the model serving it)."""
    served = {card.id: card for card in await router.models()}
    targets: dict[str, str] = {}
    for alias in router.aliases:
        if alias in served:
            continue
        try:
            targets[alias], _ = await router.route(alias)
        except ModelNotFound:
            continue  # an alias of a model no upstream serves now
    catalog: dict[str, Model] = {}
    for card in served.values():
        aliases = sorted(a for a, target in targets.items() if target == card.id)
        for name in (card.id, *aliases):
            catalog[name] = Model(
                id=name, owned_by=card.owned_by, created=card.created, purpose="chat",
                root=card.id, aliases=[a for a in (card.id, *aliases) if a != name],
            )  # fmt: skip
    names = (embeddings.model, *embeddings.aliases)
    for name in names:
        catalog.setdefault(
            name,
            Model(
                id=name, owned_by=_EMBEDDINGS_OWNER, created=0, purpose="embeddings",
                root=embeddings.model, aliases=[a for a in names if a != name],
            ),
        )  # fmt: skip
    return catalog


def _listed(catalog: dict[str, Model], principal: Principal) -> list[Model]:
    """One entry per served model (its aliases named in it); for a key restricted to
    some models, one entry per name it may use."""
    if principal.policy is None or principal.policy.allowed_models is None:
        return [m for m in catalog.values() if m.id == m.root]
    return [m for name, m in catalog.items() if principal.may_use(name)]


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["inference"]
    guards = [requires(Capability.READ_MODELS), admitted]

    @get(
        "",
        summary="List models",
        description=(
            "Every model the gateway serves: chat models (`purpose: chat`, for "
            "/v1/chat/completions and /v1/chat) and the embedding model (`purpose: "
            "embeddings`, for /v1/embeddings), each with the other names (`aliases`) that "
            "reach it. A key restricted to some models sees those only."
        ),
        responses=error_responses(401, 502),
    )
    async def list_models(
        self,
        request: Request[Any, Any, Any],
        model_router: ModelRouter,
        create_embeddings: CreateEmbeddings,
    ) -> ModelList:
        catalog = await _catalog(model_router, create_embeddings)
        return ModelList(data=_listed(catalog, request.user))

    @get(
        "/{model_id:str}",
        summary="Retrieve a model",
        description="A model or an alias (`root` names the model serving it).",
        responses=error_responses(401, 403, 404, 502),
    )
    async def get_model(
        self,
        request: Request[Any, Any, Any],
        model_id: str,
        model_router: ModelRouter,
        create_embeddings: CreateEmbeddings,
    ) -> Model:
        model = (await _catalog(model_router, create_embeddings)).get(model_id)
        if model is None:
            raise ModelNotFound(model_id)
        if not request.user.may_use(model_id):
            raise ModelNotAllowed(f"this key may not use the model `{model_id}`", param="model")
        return model

"""``/v1/keys``: managed API keys (admin tier). Secrets are shown once, at creation."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post

from adapters.http.auth import requires
from adapters.http.content import json_body
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import (
    CreatedKey,
    Deleted,
    KeyContext,
    KeyIn,
    KeyList,
    KeyOut,
    KeyWithUsage,
)
from application.access import KeyManagement
from domain.limits import ContextDefaults, ContextUser, KeyPolicy, ManagedKey, QuotaPeriod
from domain.principal import Capability, Tier


def context_defaults(asked: KeyContext | None) -> ContextDefaults:
    if asked is None:
        return ContextDefaults()
    return ContextDefaults(asked.memory, asked.rag, ContextUser(asked.user_id_from))


def key_out(key: ManagedKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        name=key.name,
        tier=key.tier,
        tenant=key.tenant,
        created_at=int(key.created_at),
        last_used_at=int(key.last_used_at) if key.last_used_at else None,
        revoked=key.revoked_at is not None,
        allowed_models=list(key.policy.allowed_models) if key.policy.allowed_models else None,
        max_tokens=key.policy.max_tokens_cap,
        token_quota=key.policy.token_quota,
        quota_period=key.policy.quota_period.value,
        context=KeyContext(
            memory=key.policy.context.memory,
            rag=key.policy.context.rag,
            user_id_from=key.policy.context.user_id_from.value,
        ),
    )


class KeysController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    guards = [requires(Capability.MANAGE_KEYS), admitted]

    @post(
        "",
        status_code=201,
        guards=[json_body],
        summary="Create a key (the secret is in this response only)",
        description=(
            "A managed key with its own policy: `allowed_models`, `max_tokens` (a cap), "
            "`token_quota` per `quota_period`, and `context`: memory and RAG by default "
            "for its requests on /v1/chat/completions, /v1/messages and /v1/responses "
            "(`memory`, `rag`; `user_id_from`: `header`, `key` or `request`), so an "
            "unmodified client gets them; the `X-Gateway-*` headers override each, off "
            "included."
        ),
        responses=error_responses(400, 401, 403, 415, 503),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: KeyIn, key_management: KeyManagement
    ) -> CreatedKey:
        policy = KeyPolicy(
            allowed_models=tuple(data.allowed_models) if data.allowed_models else None,
            max_tokens_cap=data.max_tokens,
            token_quota=data.token_quota,
            quota_period=QuotaPeriod(data.quota_period),
            context=context_defaults(data.context),
        )
        key, secret = await key_management.create(
            request.user, data.name, Tier.parse(data.tier), data.tenant, policy
        )
        return CreatedKey(id=key.id, key=secret, name=key.name, tier=key.tier, tenant=key.tenant)

    @get("", summary="List keys (never their secrets)", responses=error_responses(401, 403, 503))
    async def list_keys(self, key_management: KeyManagement) -> KeyList:
        keys = await key_management.list_keys()
        return KeyList(data=[key_out(k) for k in sorted(keys, key=lambda k: k.created_at)])

    @get(
        "/{key_id:str}",
        summary="A key and the tokens it used this period",
        responses=error_responses(401, 403, 404, 503),
    )
    async def get_key(self, key_id: str, key_management: KeyManagement) -> KeyWithUsage:
        key, used, period = await key_management.get(key_id)
        return KeyWithUsage(key=key_out(key), tokens_used_this_period=used, period=period)

    @delete(
        "/{key_id:str}",
        status_code=200,
        summary="Revoke a key (effective on every instance within a second)",
        responses=error_responses(401, 403, 404, 503),
    )
    async def revoke(
        self, request: Request[Any, Any, Any], key_id: str, key_management: KeyManagement
    ) -> Deleted:
        await key_management.revoke(request.user, key_id)
        return Deleted(id=key_id, object="api_key")

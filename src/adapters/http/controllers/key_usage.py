"""``/v1/keys/{key_id}/usage``: a managed key's requests and tokens over time (admin tier,
as every key route)."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, get
from litestar.params import Parameter

from adapters.http.auth import requires
from adapters.http.openapi import error_responses
from adapters.http.ratelimit import admitted
from adapters.http.wire import KeyUsageHistory, UsageBucketOut
from application.access import KeyManagement
from domain.principal import Capability
from domain.usage import UsageWindow


class KeyUsageController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    guards = [requires(Capability.MANAGE_KEYS), admitted]

    @get(
        "/{key_id:str}/usage",
        summary="A key's requests and tokens over time",
        description=(
            "Admitted requests and the tokens they spent (a generation's real usage once "
            "settled), in time buckets: `window=1h` gives 60 buckets of a minute, "
            "`window=24h` 24 buckets of an hour; oldest first, the last one still "
            "filling. Counted by every instance sharing Redis (in process without it); "
            "older buckets are forgotten. With the key's token quota and its use in "
            "the current period."
        ),
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def usage_history(
        self,
        key_id: str,
        key_management: KeyManagement,
        window: Literal["1h", "24h"] = Parameter(
            default="1h", description="1h: per minute; 24h: per hour"
        ),
    ) -> KeyUsageHistory:
        key, used, period = await key_management.get(key_id)
        series = await key_management.usage_series(key_id, UsageWindow.parse(window))
        return KeyUsageHistory(
            key_id=key.id,
            window=window,
            bucket_s=series.window.bucket_s,
            requests=series.requests,
            tokens=series.tokens,
            data=[UsageBucketOut(b.start, b.requests, b.tokens) for b in series.buckets],
            token_quota=key.policy.token_quota,
            quota_period=key.policy.quota_period.value,
            period=period,
            tokens_used_this_period=used,
        )

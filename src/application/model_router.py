"""Which upstream serves which model."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from domain.chat import ModelCard
from domain.errors import UpstreamError, UpstreamUnavailable
from domain.routing import RoutingTable
from ports.chat_model import ChatModel
from ports.clock import Clock


class ModelRouter:
    """Routes a requested model name to ``(model, upstream)``.

    With an explicit ``model_map`` (model → upstream names) only those models are
    routed. Without one, every model an upstream lists on its ``/v1/models`` is routed
    to it (the first upstream listing a name wins); the lists are cached for
    ``cache_ttl_s`` and the last good list is kept while an upstream is down."""

    def __init__(
        self,
        upstreams: Sequence[ChatModel],
        table: RoutingTable,
        clock: Clock,
        *,
        model_map: Mapping[str, Sequence[str]] | None = None,
        cache_ttl_s: float = 60.0,
    ) -> None:
        self._upstreams = {u.name: u for u in upstreams}
        self._table = table
        self._clock = clock
        self._ttl = cache_ttl_s
        self._lock = asyncio.Lock()
        self._catalog: dict[str, tuple[ModelCard, list[ChatModel]]] = {}
        self._expires = float("-inf")
        if model_map:
            self._catalog = self._explicit(model_map)
            self._expires = float("inf")

    def _explicit(
        self, model_map: Mapping[str, Sequence[str]]
    ) -> dict[str, tuple[ModelCard, list[ChatModel]]]:
        catalog = {}
        for model, names in model_map.items():
            upstreams = [self._upstreams[name] for name in names]
            catalog[model] = (ModelCard(id=model, owned_by=upstreams[0].name), upstreams)
        return catalog

    async def _current(self) -> dict[str, tuple[ModelCard, list[ChatModel]]]:
        if self._clock.monotonic() < self._expires:
            return self._catalog
        async with self._lock:
            if self._clock.monotonic() < self._expires:
                return self._catalog
            await self._discover()
        return self._catalog

    async def _discover(self) -> None:
        upstreams = list(self._upstreams.values())
        listed = await asyncio.gather(*(u.list_models() for u in upstreams), return_exceptions=True)
        catalog: dict[str, tuple[ModelCard, list[ChatModel]]] = {}
        unreachable = []
        for upstream, cards in zip(upstreams, listed, strict=True):
            if isinstance(cards, UpstreamError):
                unreachable.append(upstream)
            elif isinstance(cards, BaseException):
                raise cards
            else:
                for card in cards:
                    catalog.setdefault(card.id, (card, []))[1].append(upstream)
        answered = len(unreachable) < len(upstreams)
        # An unreachable upstream keeps the models it served before, behind the
        # reachable ones serving the same name.
        for name, (card, owners) in self._catalog.items():
            for owner in owners:
                if owner in unreachable:
                    catalog.setdefault(name, (card, []))[1].append(owner)
        self._catalog = catalog
        # Retry soon when nobody answered; otherwise trust the lists for the TTL.
        self._expires = self._clock.monotonic() + (self._ttl if answered else 1.0)

    @property
    def aliases(self) -> tuple[str, ...]:
        """The names that route to a model of another name."""
        return tuple(self._table.aliases)

    async def models(self) -> list[ModelCard]:
        catalog = await self._current()
        if not catalog:
            raise UpstreamUnavailable("no inference upstream is reachable to list its models")
        return [card for card, _ in catalog.values()]

    async def route(self, requested: str | None) -> tuple[str, list[ChatModel]]:
        """The model, and the upstreams serving it in the order to try them: those
        accepting requests first, fewest outstanding requests first (least-outstanding
        balancing), configuration order between equals."""
        catalog = await self._current()
        if not catalog:
            raise UpstreamUnavailable("no inference upstream is reachable to list its models")
        model = self._table.resolve(requested, catalog.keys())
        upstreams = catalog[model][1]
        if len(upstreams) == 1:
            return model, upstreams
        return model, sorted(upstreams, key=lambda u: (not u.accepting, u.in_flight))

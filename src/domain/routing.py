"""Which model a request names, after defaults and aliases."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from domain.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """``default_model`` serves requests without a model (``None``: the first model
    routed); ``aliases`` rename requested models (to ``None``: the default model). A
    name that an upstream really serves always wins over an alias of the same name."""

    default_model: str | None = None
    aliases: Mapping[str, str | None] = field(default_factory=dict)

    def resolve(self, requested: str | None, routed: Collection[str]) -> str:
        if requested and requested in routed:
            return requested
        if requested and requested not in self.aliases:
            raise ModelNotFound(requested)
        target = self.aliases[requested] if requested else None
        if target is None:
            target = self.default_model or next(iter(routed), None)
        if target is None or target not in routed:
            raise ModelNotFound(requested or target or "(default)")
        return target

"""``ResilientEmbedder``: any remote ``Embedder`` with retries and a circuit breaker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from adapters.inference.resilience import Resilience, ResilienceOptions, Verdicts
from adapters.inference.transport_errors import EmbeddingRefused
from domain.errors import EmbeddingUnavailable
from domain.health import ServiceHealth
from ports.embedder import Embedder

EMBEDDING_VERDICTS = Verdicts(
    server="embedding server",
    failures=(EmbeddingUnavailable,),
    # It answered, refusing this request (its 4xx): it works.
    answered=(EmbeddingRefused,),
    refused=EmbeddingUnavailable,
)


class ResilientEmbedder:
    """``inner`` (named ``name`` in messages and telemetry) behind ``Resilience``:
    a batch the server did no work on is sent again (``retries``, within
    ``retry_budget_s``), and its ``breaker`` refuses at once while it keeps failing,
    so that retrieval is skipped without waiting on a dead server."""

    def __init__(
        self, inner: Embedder, *, name: str, **resilience: Unpack[ResilienceOptions]
    ) -> None:
        self._inner = inner
        self.name = name
        self.model = inner.model
        self._resilience = Resilience(name, EMBEDDING_VERDICTS, **resilience)

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        self._inner.dimension = value

    @property
    def accepting(self) -> bool:
        """False while the server's circuit is open."""
        return self._resilience.accepting

    async def embed_query(self, text: str) -> list[float]:
        inner = self._inner
        return await self._resilience.run(lambda: inner.embed_query(text))

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        inner = self._inner
        return await self._resilience.run(lambda: inner.embed_documents(texts))

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    async def check(self) -> ServiceHealth:
        """The server's health, degraded while its circuit is open."""
        return self._resilience.health(await self._inner.check())

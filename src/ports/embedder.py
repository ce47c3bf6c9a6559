"""The embedding port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.health import ServiceHealth


class Embedder(Protocol):
    """Turns text into unit-length vectors of ``dimension`` floats (cosine = dot).

    Errors: ``domain.errors.EmbeddingUnavailable`` when the model cannot answer."""

    model: str
    dimension: int

    async def embed_query(self, text: str) -> list[float]:
        """A search query's vector (some models prefix queries differently)."""
        ...

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; large inputs are batched by the adapter."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model counts them (an estimate where the adapter
        has no tokenizer); chunking measures chunks with it. Subadditive over texts
        joined by one whitespace character: ``count(a + "\n" + b) <= count(a) +
        count(b) + 1``, so the context can be sized piece by piece."""
        ...

    async def check(self) -> ServiceHealth: ...

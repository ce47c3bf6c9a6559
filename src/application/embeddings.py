"""Embeddings for clients, from the same model the gateway retrieves with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import InvalidRequest
from ports.embedder import Embedder

MAX_INPUTS = 2048


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int


class CreateEmbeddings:
    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def model(self) -> str:
        return self._embedder.model

    async def __call__(self, inputs: Sequence[str]) -> EmbeddingResult:
        if not inputs:
            raise InvalidRequest("`input` must not be empty", param="input")
        if len(inputs) > MAX_INPUTS:
            raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
        if any(not text for text in inputs):
            raise InvalidRequest("`input` must not contain empty strings", param="input")
        vectors = await self._embedder.embed_documents(inputs)
        tokens = sum(self._embedder.count_tokens(text) for text in inputs)
        return EmbeddingResult(self._embedder.model, vectors, tokens)

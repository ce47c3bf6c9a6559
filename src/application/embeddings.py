"""Embeddings for clients, from the same model the gateway retrieves with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import InvalidRequest, ModelNotFound
from ports.embedder import Embedder

MAX_INPUTS = 2048


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int


class EmbeddingModelNotFound(ModelNotFound):
    def __init__(self, model: str, available: Sequence[str]) -> None:
        super().__init__(model)
        self.message = (
            f"The embedding model `{model}` does not exist; this gateway embeds with: "
            + ", ".join(f"`{name}`" for name in available)
        )


class CreateEmbeddings:
    """The gateway's embedder for clients, under its own name and its ``aliases``."""

    def __init__(self, embedder: Embedder, aliases: Sequence[str] = ()) -> None:
        self._embedder = embedder
        self._aliases = tuple(a for a in aliases if a and a != embedder.model)

    @property
    def model(self) -> str:
        return self._embedder.model

    @property
    def aliases(self) -> tuple[str, ...]:
        return self._aliases

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def resolve(self, requested: str | None) -> str:
        """The embedder's name for ``requested`` (itself or an alias; None: itself)."""
        if requested is None or requested == self.model or requested in self._aliases:
            return self.model
        raise EmbeddingModelNotFound(requested, (self.model, *self._aliases))

    def check_dimensions(self, dimensions: int | None) -> None:
        """OpenAI's ``dimensions``: only the embedder's own can be honoured."""
        if dimensions is not None and dimensions != self.dimension:
            raise InvalidRequest(
                f"`dimensions` is {dimensions}; the embedding model `{self.model}` gives "
                f"{self.dimension}-dimensional vectors and cannot shorten them "
                "(omit `dimensions`, or send the model's own)",
                param="dimensions",
            )

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

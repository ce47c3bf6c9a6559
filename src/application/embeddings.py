"""Embeddings for clients, from the same model the gateway retrieves with."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from application.fair_embedder import FairEmbedder
from domain.errors import InvalidRequest, ModelNotFound
from ports.embedder import Embedder

# OpenAI's own bounds: a client that works against OpenAI works here.
MAX_INPUTS = 2048
MAX_TOKENS = 300_000


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
    """The gateway's embedder for clients, under its own name and its ``aliases``: at
    most ``max_inputs`` texts and ``max_tokens`` tokens (the model's count) a request;
    the work takes the tenant's turns on the shared embedder."""

    def __init__(
        self,
        embedder: Embedder,
        aliases: Sequence[str] = (),
        *,
        max_inputs: int = MAX_INPUTS,
        max_tokens: int = MAX_TOKENS,
        fair: FairEmbedder | None = None,
    ) -> None:
        self._embedder = embedder
        self._aliases = tuple(a for a in aliases if a and a != embedder.model)
        self._max_inputs = max_inputs
        self._max_tokens = max_tokens
        self._fair = fair or FairEmbedder(embedder)

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

    async def __call__(self, inputs: Sequence[str], tenant: str = "") -> EmbeddingResult:
        if not inputs:
            raise InvalidRequest("`input` must not be empty", param="input")
        if len(inputs) > self._max_inputs:
            raise InvalidRequest(
                f"{len(inputs)} inputs; at most {self._max_inputs} per request "
                "(GATEWAY_EMBEDDINGS_MAX_INPUTS)",
                param="input",
            )
        if any(not text for text in inputs):
            raise InvalidRequest("`input` must not contain empty strings", param="input")
        # Counting a megabyte of text is CPU work: off the event loop.
        tokens = await asyncio.to_thread(self._count, inputs)
        if tokens > self._max_tokens:
            raise InvalidRequest(
                f"the inputs have {tokens} tokens; at most {self._max_tokens} per request "
                "(GATEWAY_EMBEDDINGS_MAX_TOKENS)",
                param="input",
            )
        vectors = await self._fair.embed(tenant, inputs)
        return EmbeddingResult(self._embedder.model, vectors, tokens)

    def _count(self, inputs: Sequence[str]) -> int:
        return sum(self._embedder.count_tokens(text) for text in inputs)

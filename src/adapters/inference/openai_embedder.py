"""``OpenAICompatibleEmbedder``: any server speaking OpenAI's ``/v1/embeddings`` (MAX
Serve, vLLM, llama.cpp server, Ollama, TEI...), through a pooled httpx client.

Servers differ in what they return: MAX Serve answers mean-pooled vectors that are not
unit length, so every vector is normalised here (the port promises cosine = dot)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence

import httpx

from adapters.inference.openai_wire import (
    MALFORMED,
    api_base,
    decode_embeddings,
    encode,
    error_reason,
)
from adapters.inference.transport_errors import (
    EMBEDDING,
    EmbeddingRefused,
    RetryableEmbeddingUnavailable,
    TranslatedTransport,
    retry_after,
)
from domain.errors import EmbeddingUnavailable
from domain.health import ServiceHealth, Status

_PROBE = "health check"


class OpenAICompatibleEmbedder:
    """``model`` is the name the server serves. ``query_prefix`` / ``document_prefix``
    are prepended as the model expects (nomic-embed-text: ``"search_query: "`` and
    ``"search_document: "``). ``dimension`` is discovered from the server's first answer
    when not given (``probe_dimension()`` asks at once). Inputs are sent ``batch_size``
    at a time. With ``max_input_tokens``, a longer text is cut (at a word, by the
    estimate of ``count_tokens``) before it is sent: MAX Serve answers 500 to an input
    past the model's window (512 tokens for all-MiniLM-L6-v2) instead of truncating."""

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        *,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = 64,
        max_input_tokens: int | None = None,
        timeout_s: float = 30.0,
        health_name: str = "embeddings",
    ) -> None:
        self._base = api_base(base_url)
        self.name = self._base
        self.model = model
        self.health_name = health_name
        self._client = client
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._dimension = dimension
        self._query_prefix = query_prefix
        self._document_prefix = document_prefix
        self._batch_size = max(1, batch_size)
        self._max_input_tokens = max_input_tokens
        self._timeout = timeout_s
        self._translated = TranslatedTransport(self.name, EMBEDDING)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            raise EmbeddingUnavailable(
                f"the dimension of {self.model} is not known before {self.name} has answered "
                "once: await probe_dimension() first"
            )
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        self._dimension = value

    async def probe_dimension(self) -> int:
        """The vectors' dimension, asking the server with a probe text if not known."""
        if self._dimension is None:
            await self._embed_batch([_PROBE])
        return self.dimension

    async def embed_query(self, text: str) -> list[float]:
        return (await self._embed_batch([self._fitted(self._query_prefix + text)]))[0]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        prefixed = [self._fitted(self._document_prefix + t) for t in texts]
        vectors: list[list[float]] = []
        for start in range(0, len(prefixed), self._batch_size):
            vectors += await self._embed_batch(prefixed[start : start + self._batch_size])
        return vectors

    def count_tokens(self, text: str) -> int:
        """An ESTIMATE (the server's tokenizer is not here): the larger of ~4 characters
        and ~0.75 words per token, plus a token per non-ASCII character (CJK is a token
        a character). It errs high for prose, so chunks measured with it fit; it can err
        low for long unbroken strings (hashes, base64)."""
        wide = sum(1 for c in text if ord(c) > 127)
        narrow = max(math.ceil((len(text) - wide) / 4), math.ceil(len(text.split()) * 4 / 3))
        return narrow + wide

    def _fitted(self, text: str) -> str:
        limit = self._max_input_tokens
        if limit is None or self.count_tokens(text) <= limit:
            return text
        words = text.split()
        kept = min(len(words), limit)  # a word is at least a token
        while kept > 1 and self.count_tokens(" ".join(words[:kept])) > limit:
            kept -= 1
        return " ".join(words[:kept])

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            await self._embed_batch([_PROBE])
        except Exception as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started))

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        with self._translated:
            # httpx's timeouts bound each read; this bounds the whole answer.
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(
                    f"{self._base}/embeddings",
                    content=encode({"model": self.model, "input": texts}),
                    headers=self._headers,
                    timeout=self._timeout,
                )
        self._raise_for_status(response)
        try:
            items = decode_embeddings(response.content).data
        except MALFORMED as exc:
            raise EmbeddingUnavailable(
                f"embedding server {self.name} answered something that is not an embedding list"
            ) from exc
        if sorted(item.index for item in items) != list(range(len(texts))):
            raise EmbeddingUnavailable(
                f"embedding server {self.name} answered {len(items)} vectors for {len(texts)} "
                "inputs (or repeated an index)"
            )
        items.sort(key=lambda item: item.index)
        return [self._unit(item.embedding) for item in items]

    def _unit(self, vector: list[float]) -> list[float]:
        if self._dimension is None:
            self._dimension = len(vector)
        if len(vector) != self._dimension:
            raise EmbeddingUnavailable(
                f"embedding server {self.name} answered a vector of {len(vector)} dimensions "
                f"for {self.model}, which has {self._dimension}"
            )
        norm = math.sqrt(math.fsum(x * x for x in vector))
        if not math.isfinite(norm) or norm == 0.0:
            raise EmbeddingUnavailable(
                f"embedding server {self.name} answered a zero or non-finite vector"
            )
        return [x / norm for x in vector]

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        failed = f"embedding server {self.name} failed with status {status}"
        if status in (429, 502, 503):  # it did no work: safe to send again
            raise RetryableEmbeddingUnavailable(failed, retry_after(response))
        if status >= 500:
            # Its text is not relayed: a server error's message may hold a traceback.
            raise EmbeddingUnavailable(failed)
        message, _ = error_reason(response.content, response.reason_phrase)
        raise EmbeddingRefused(
            f"embedding server {self.name} refused the request ({status}): {message}"
        )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

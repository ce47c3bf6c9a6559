"""``FakeEmbedder``: the Embedder port in memory, with vectors a test can reason about.

A text's vector is its hashed bag of words (lower-cased, a trailing plural ``s``
dropped, a few stop words ignored), L2-normalised: texts that share words score higher
than texts that share none, the same text always gets the same vector, and a text's
vector does not depend on what else is in the batch. Tokens are whitespace-separated
words, as ``FakeChatModel`` counts them."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

from domain.health import ServiceHealth, Status

_WORD = re.compile(r"\w+")
_STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "my",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "was",
        "what",
    }
)


def _terms(text: str) -> list[str]:
    words = (w.lower() for w in _WORD.findall(text))
    stems = (w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)
    return [s for s in stems if s not in _STOP_WORDS] or ["\x00empty"]


class FakeEmbedder:
    """Set ``failure`` to make every call raise it (and ``check`` report UNHEALTHY).
    ``calls`` holds the texts of every embedding call, in order; ``batch_size`` splits
    ``embed_documents`` as an adapter would (each batch is one call)."""

    model = "fake-embedder"

    def __init__(
        self, dimension: int = 256, batch_size: int = 64, health_name: str = "embeddings"
    ) -> None:
        self.dimension = dimension
        self.batch_size = batch_size
        self.health_name = health_name
        self.failure: Exception | None = None
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> list[float]:
        counts = [0.0] * self.dimension
        for term in _terms(text):
            digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "big") % self.dimension
            counts[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(c * c for c in counts))
        if norm == 0.0:  # colliding terms cancelled out: any fixed unit vector will do
            return [1.0] + [0.0] * (self.dimension - 1)
        return [c / norm for c in counts]

    def _call(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(texts)
        if self.failure is not None:
            raise self.failure
        return [self.vector(t) for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return self._call([text])[0]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += self._call(list(texts[start : start + self.batch_size]))
        return vectors

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def check(self) -> ServiceHealth:
        if self.failure is not None:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, 0.0, str(self.failure))
        return ServiceHealth(self.health_name, Status.HEALTHY, 0.0)

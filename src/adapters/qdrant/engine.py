"""What every Qdrant store shares, whatever the engine: the vector names, the fusion, the
keyword (BM25) terms, and the driver protocol a store is written against.

A store describes what it wants in the neutral terms below (``Collection``, ``Where``,
``StoredPoint``, ``Search``, the writes); a driver turns them into its engine's requests and its
engine's failures into the store's ``unavailable`` error."""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from qdrant_edge import Bm25, Bm25Config, SparseVector

from domain.errors import BackendUnavailable
from domain.health import ServiceHealth, Status

DENSE = "dense"
SPARSE = "bm25"
# Qdrant's own default constant: what a server's FusionQuery(RRF) uses, so the embedded and
# the server engines fuse alike. Small k favours hits that one retriever ranks first.
RRF_K = 2
SCROLL_PAGE = 1024

# How a payload field is indexed: the tenant key (co-located per tenant), an exact-match
# keyword, or an instant (RFC 3339) that a decay formula reads.
IndexKind = Literal["tenant", "keyword", "datetime"]
Payload = Mapping[str, Any]


def prefetch_depth(k: int) -> int:
    """Candidates each retriever hands to the fusion (and how many fused hits are read
    when a threshold may drop some): deep enough for a hit that only one retriever
    ranks well to reach the top ``k``."""
    return max(4 * k, 20)


class KeywordEncoder:
    """BM25 in the gateway: a document's terms weighted by saturated, length-normalised
    frequency (Edge's ``Bm25``: k=1.2, b=0.75, English stemming and stopwords), a query's
    terms by 1; the engine multiplies by each term's IDF at search time (the sparse vector
    is declared with the IDF modifier on both engines)."""

    def __init__(self, config: Bm25Config | None = None) -> None:
        self._bm25 = Bm25(config)

    def document(self, text: str) -> SparseVector:
        return self._bm25.embed_document(text)

    def query(self, text: str) -> SparseVector:
        return self._bm25.embed_query(text)


def unit(vector: Sequence[float]) -> list[float]:
    norm = math.hypot(*vector)
    return [x / norm for x in vector] if norm else list(vector)


def cosine(unit_query: Sequence[float], stored: Sequence[float]) -> float:
    """Cosine of a stored vector to an already unit-length query, within [-1, 1]."""
    norm = math.hypot(*stored)
    if not norm:
        return 0.0
    dot: float = sum(map(operator.mul, unit_query, stored))
    return max(-1.0, min(1.0, dot / norm))


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


# --- the neutral requests ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collection:
    """What a store keeps: a cosine vector of ``dimension`` named ``DENSE``, a BM25 sparse
    vector named ``SPARSE`` (IDF-weighted), and the payload ``indexes``. ``name`` is the
    server collection (an Edge shard is a directory of its own)."""

    name: str
    dimension: int
    indexes: Mapping[str, IndexKind]


@dataclass(frozen=True, slots=True)
class Where:
    """Points whose payload matches every ``equals`` pair exactly (keyword match: a value
    such as ``*`` or ``{"$ne": 1}`` is only itself), at least one ``any_of`` pair when
    there are any, every ``ranges`` bound (``gt``, ``gte``, ``lt``, ``lte`` on a number);
    whose id is one of ``ids`` when given, and none of ``not_ids``."""

    equals: tuple[tuple[str, str | int], ...] = ()
    any_of: tuple[tuple[str, str | int], ...] = ()
    ranges: tuple[tuple[str, Mapping[str, float]], ...] = ()
    ids: tuple[str, ...] = ()
    not_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point with both vectors, or (``dense`` None) a record without any, which no
    search finds and only a scroll reads."""

    id: str
    dense: Sequence[float] | None
    sparse: SparseVector | None
    payload: Payload


@dataclass(frozen=True, slots=True)
class Upsert:
    points: Sequence[StoredPoint]


@dataclass(frozen=True, slots=True)
class DeleteIds:
    ids: Sequence[str]


@dataclass(frozen=True, slots=True)
class DeleteWhere:
    where: Where


Write = Upsert | DeleteIds | DeleteWhere


@dataclass(frozen=True, slots=True)
class Decay:
    """Rescore each retriever's candidates by ``$score × 0.5^(age / half_life_s)``, age
    read from the datetime payload field ``key`` at ``now`` (a later date counts as new)."""

    key: str
    half_life_s: float
    now: float


Retrievers = Literal["dense", "keyword", "hybrid"]


@dataclass(frozen=True, slots=True)
class Search:
    """The best ``limit`` points of ``where`` by the dense retriever (``dense``, unit
    length; score: cosine, at least ``score_threshold`` when set), the keyword one
    (``sparse``), or both (``depth`` candidates each, fused by reciprocal rank; ``decay``
    then rescores each retriever's candidates before the fusion). ``fields``: the
    payload fields read (all when None); ``with_dense``: the stored dense vector too."""

    dense: Sequence[float]
    sparse: SparseVector
    where: Where
    limit: int
    depth: int
    retrievers: Retrievers = "hybrid"
    decay: Decay | None = None
    score_threshold: float | None = None
    fields: tuple[str, ...] | None = None
    with_dense: bool = True


@dataclass(frozen=True, slots=True)
class Found:
    payload: Payload
    score: float
    dense: Sequence[float] = field(default_factory=list)


class QdrantDriver(Protocol):
    """One collection on one engine. Every call raises the store's ``unavailable`` error
    (a ``BackendUnavailable``) when the engine fails, naming ``action``."""

    async def write(self, writes: Sequence[Write], *, action: str) -> None:
        """In order; on Edge as one step of the shard's thread (no search in between)."""
        ...

    async def search(self, search: Search, *, action: str) -> list[Found]: ...

    async def scroll(self, where: Where, *, limit: int | None, action: str) -> list[Payload]:
        """The payloads of ``where`` (every one when ``limit`` is None), paged internally."""
        ...

    async def remove(self, where: Where, *, action: str) -> int:
        """Delete the points of ``where``; how many there were."""
        ...

    async def optimize(self) -> None:
        """Compact and index after bulk loads (a no-op where the engine does it itself)."""
        ...

    async def describe(self) -> str | None:
        """A health detail (None: nothing to add); raises when the engine cannot answer."""
        ...

    async def close(self) -> None: ...


async def probe(driver: QdrantDriver, name: str) -> ServiceHealth:
    """A store's health: healthy with the driver's detail, or unhealthy with its error."""
    started = time.perf_counter()
    try:
        detail = await driver.describe()
    except BackendUnavailable as exc:
        return ServiceHealth(name, Status.UNHEALTHY, ms_since(started), str(exc))
    return ServiceHealth(name, Status.HEALTHY, ms_since(started), detail)

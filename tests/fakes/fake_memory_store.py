"""``FakeMemoryStore``: the MemoryStore port in memory, searched by brute force.

It answers like the Qdrant adapters: the user's memories are ranked by cosine and by a
keyword score (BM25 on lowercase words, k1 1.2, b 0.75, IDF over every stored memory);
each list's top ``max(4 × limit, 20)`` is re-ranked by its score × ``DecayPolicy.weight``
and the two are fused by reciprocal rank (constant 2); the fused top ``limit`` are the
hits, ordered by ``DecayPolicy.score`` of their cosine. Set ``down`` to make every call
fail with ``MemoryUnavailable``, or ``fail_adds`` to fail only the next adds."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from domain.documents import Page
from domain.errors import InvalidRequest, MemoryUnavailable
from domain.health import ServiceHealth, Status
from domain.memory import DecayPolicy, Memory, MemoryHit, MemoryOwner

RRF_K = 2
_K1, _B, _AVG_LEN = 1.2, 0.75, 256.0
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it",
     "of", "on", "or", "that", "the", "this", "to", "was", "what", "with"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Stored:
    memory: Memory
    vector: tuple[float, ...]
    terms: Counter[str]


def _terms(text: str) -> Counter[str]:
    return Counter(w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)


class FakeMemoryStore:
    def __init__(self, decay: DecayPolicy | None = None) -> None:
        self.decay = decay or DecayPolicy()
        self.memories: dict[tuple[str, str, str], _Stored] = {}  # (tenant, user_id, id)
        self.down = False
        self.fail_adds = 0
        self.add_calls = 0  # every add, failed or not
        self.adds = 0  # successful adds

    def _available(self) -> None:
        if self.down:
            raise MemoryUnavailable("the fake memory store is down")

    async def add(self, memory: Memory, vector: list[float]) -> None:
        self.add_calls += 1
        self._available()
        if self.fail_adds > 0:
            self.fail_adds -= 1
            raise MemoryUnavailable("the fake memory store failed this add")
        key = (memory.tenant, memory.user_id, memory.id)
        self.memories[key] = _Stored(memory, tuple(vector), _terms(memory.text))
        self.adds += 1

    def _owned(self, owner: MemoryOwner) -> list[_Stored]:
        return [s for s in self.memories.values() if s.memory.owner == owner]

    def _bm25(self, stored: _Stored, query: set[str]) -> float:
        total = len(self.memories)
        length = sum(stored.terms.values())
        score = 0.0
        for term in query & stored.terms.keys():
            df = sum(1 for s in self.memories.values() if term in s.terms)
            idf = math.log((total - df + 0.5) / (df + 0.5) + 1)
            tf = stored.terms[term]
            score += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / _AVG_LEN))
        return score

    async def search(
        self, owner: MemoryOwner, text: str, vector: list[float], limit: int, now: float
    ) -> list[MemoryHit]:
        self._available()
        owned = self._owned(owner)
        cosines = {s.memory.id: _cosine(s.vector, vector) for s in owned}
        words = set(_terms(text))
        keyword = {s.memory.id: self._bm25(s, words) for s in owned}
        weight = {s.memory.id: self.decay.weight(s.memory.created_at, now) for s in owned}
        depth = max(4 * limit, 20)
        fused: dict[str, float] = {}
        for scores in (cosines, {i: s for i, s in keyword.items() if s > 0}):
            candidates = sorted(scores, key=lambda i: -scores[i])[:depth]
            decayed = sorted(candidates, key=lambda i: -scores[i] * weight[i])
            for position, memory_id in enumerate(decayed):
                fused[memory_id] = fused.get(memory_id, 0.0) + 1 / (position + RRF_K)
        top = sorted(fused, key=lambda i: -fused[i])[:limit]
        by_id = {s.memory.id: s.memory for s in owned}
        hits = [
            MemoryHit(
                id=i,
                text=by_id[i].text,
                score=cosines[i] * weight[i],
                similarity=cosines[i],
                timestamp=by_id[i].created_at,
            )
            for i in top
        ]
        return sorted(hits, key=lambda hit: hit.score, reverse=True)

    async def list_memories(
        self, owner: MemoryOwner, limit: int, after: str | None = None
    ) -> Page[Memory]:
        self._available()
        ordered = sorted(
            (s.memory for s in self._owned(owner)),
            key=lambda m: (m.created_at, m.id),
            reverse=True,
        )
        ids = [m.id for m in ordered]
        if after is not None and after not in ids:
            raise InvalidRequest(f"no memory {after!r} to list after", param="after")
        start = 0 if after is None else ids.index(after) + 1
        return Page(data=ordered[start : start + limit], has_more=len(ordered) > start + limit)

    async def get(self, owner: MemoryOwner, memory_id: str) -> Memory | None:
        self._available()
        stored = self.memories.get((owner.tenant, owner.user_id, memory_id))
        return stored.memory if stored else None

    async def update(
        self, owner: MemoryOwner, memory_id: str, text: str, vector: list[float]
    ) -> Memory | None:
        self._available()
        key = (owner.tenant, owner.user_id, memory_id)
        if key not in self.memories:
            return None
        memory = replace(self.memories[key].memory, text=text)
        self.memories[key] = _Stored(memory, tuple(vector), _terms(text))
        return memory

    async def delete(self, owner: MemoryOwner, memory_id: str) -> bool:
        self._available()
        return self.memories.pop((owner.tenant, owner.user_id, memory_id), None) is not None

    async def forget(self, owner: MemoryOwner) -> int:
        self._available()
        owned = [key for key in self.memories if key[:2] == (owner.tenant, owner.user_id)]
        for key in owned:
            del self.memories[key]
        return len(owned)

    async def check(self) -> ServiceHealth:
        if self.down:
            return ServiceHealth("memory", Status.UNHEALTHY, 0.0, "the fake memory store is down")
        return ServiceHealth("memory", Status.HEALTHY, 0.0)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norms = math.hypot(*a) * math.hypot(*b)
    if not norms:
        return 0.0
    return max(-1.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True)) / norms))

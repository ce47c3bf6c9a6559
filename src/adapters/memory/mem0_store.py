"""``Mem0MemoryStore``: long-term memory kept by Mem0 (``mem0ai``, the ``[mem0]`` extra) in
a Qdrant collection of its own: a local path under ``directory`` (Mem0 cannot use Qdrant
Edge) or a Qdrant server. The gateway's Embedder makes the vectors; with ``extraction`` on,
the gateway's inference upstream distils each stored turn into facts (0..n).

Mem0 is synchronous: every call runs on one dedicated thread (the local Qdrant and Mem0's
SQLite are single-threaded), and Mem0's embedder is a bridge that runs the async Embedder
port on the caller's event loop. The vectors the port hands in are used as they are; the
embedder is asked only for what Mem0 makes itself (a turn's related memories, its facts).

Isolation: Mem0's ``user_id`` is a digest of (tenant, user id): Mem0 trims ids, refuses
blank or spaced ones and reads ``"*"`` in a filter as "any value", so a raw user id could
reach another user's memories. A memory is found by a digest of its owner and id, never by
a caller's string. Decay: Mem0 has none; search over-fetches by similarity and re-ranks by
``DecayPolicy``. Mem0's keyword (BM25) leg needs fastembed, which downloads its model, so
Mem0 searches by similarity only.

Nothing leaves the host: Mem0's telemetry is off (it also gates Mem0's remote notices), its
home is under ``directory`` unless ``MEM0_DIR`` is set, and the extra pulls neither
fastembed nor spaCy (Mem0 would download their models)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from qdrant_client import QdrantClient

from adapters.memory.qdrant_memory import newest_first
from adapters.qdrant.edge import rfc3339
from adapters.qdrant.engine import prefetch_depth
from domain.documents import Page
from domain.errors import ConfigurationError, MemoryUnavailable
from domain.health import ServiceHealth, Status
from domain.memory import DecayPolicy, Memory, MemoryHit, MemoryOwner
from ports.embedder import Embedder

T = TypeVar("T")

# Mem0 metadata of a gateway memory: the digest that finds it, the digest of the add() it
# came from (a turn's facts share it), and the gateway's own record of it.
KEY, TURN, STORED = "gw_key", "gw_turn", "gw_memory"
_LIST_PAGE = 1000
_NOWHERE = "http://127.0.0.1:9/v1"  # for the Mem0 clients the store replaces: reach nothing


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def mem0_user_id(owner: MemoryOwner) -> str:
    """Mem0's ``user_id`` for a user of a tenant: only ever that user."""
    return f"gw-{_digest(owner.tenant, owner.user_id)}"


@dataclass
class _Call:
    """One store call on the Mem0 thread: the loop the embedder runs on, the vectors known
    (the port's and those made during the call, by query or document kind and text), and
    the first embedding failure: Mem0 skips a fact it could not embed, the store must not."""

    loop: asyncio.AbstractEventLoop
    timeout_s: float
    known: dict[tuple[bool, str], list[float]] = field(default_factory=dict)
    failure: Exception | None = None

    def know(self, text: str, vector: Sequence[float], *, query: bool = False) -> None:
        self.known[(query, text)] = list(vector)


class _PortEmbedding:
    """Mem0's embedder interface (``embed``, ``embed_batch``, ``config.embedding_dims``)
    over the Embedder port. Mem0's config names only its own providers, so the store sets
    it on the Mem0 instance it built."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.config = SimpleNamespace(embedding_dims=embedder.dimension)
        self.call: _Call | None = None

    def embed(self, text: str, memory_action: str | None = None) -> list[float]:
        return self.embed_batch([text], memory_action)[0]

    def embed_batch(
        self, texts: Sequence[str], memory_action: str | None = "add"
    ) -> list[list[float]]:
        call = self.call
        if call is None:
            raise RuntimeError("Mem0 asked for an embedding outside a store call")
        query = memory_action == "search"
        missing = [text for text in dict.fromkeys(texts) if (query, text) not in call.known]
        if missing:
            for text, vector in zip(missing, self._made(call, missing, query), strict=True):
                call.know(text, vector, query=query)
        return [call.known[(query, text)] for text in texts]

    def _made(self, call: _Call, texts: list[str], query: bool) -> list[list[float]]:
        async def vectors() -> list[list[float]]:
            if query:
                return [await self._embedder.embed_query(text) for text in texts]
            return await self._embedder.embed_documents(texts)

        future = asyncio.run_coroutine_threadsafe(vectors(), call.loop)
        try:
            return future.result(call.timeout_s)
        except Exception as exc:
            future.cancel()
            call.failure = call.failure or exc
            raise


class Mem0MemoryStore:
    """Under ``directory``: ``qdrant/`` (the local collection, unless ``qdrant_url``), Mem0's
    ``history.db`` and its home ``mem0/``. Opened on first use, on the store's thread (Mem0
    imported, the collection created); ``close()`` closes Mem0's history and the Qdrant
    client. ``timeout_s`` bounds each embedding, extraction and Qdrant server request.

    With extraction on, the facts distilled from a memory ``m`` are ``m.0``, ``m.1``…; ``m``
    itself is not kept, and adding ``m`` again replaces its facts."""

    def __init__(
        self,
        directory: Path,
        embedder: Embedder,
        *,
        extraction: bool = False,
        llm_base_url: str | None = None,
        llm_model: str | None = None,
        llm_api_key: str | None = None,
        qdrant_url: str | None = None,
        qdrant_api_key: str | None = None,
        collection: str = "mem0_memories",
        decay: DecayPolicy | None = None,
        health_name: str = "memory",
        timeout_s: float = 30.0,
    ) -> None:
        if extraction and not (llm_base_url and llm_model):
            raise ConfigurationError("Mem0 extraction needs the inference upstream's URL and model")
        self.dimension = embedder.dimension
        self.collection = collection
        self.health_name = health_name
        self._directory = Path(directory)
        self._extraction = extraction
        self._llm = (llm_base_url, llm_model, llm_api_key or "unused")
        self._qdrant = (qdrant_url, qdrant_api_key)
        self._decay = decay or DecayPolicy()
        self._timeout_s = timeout_s
        self._embedding = _PortEmbedding(embedder)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mem0")
        self._mem0: Any = None
        self._client: QdrantClient | None = None
        self._closed = False

    # --- the port ------------------------------------------------------------------------

    async def add(self, memory: Memory, vector: list[float]) -> None:
        await self._run(
            f"store the memory {memory.id!r}", lambda m, call: self._add(m, call, memory, vector)
        )

    async def search(
        self, owner: MemoryOwner, text: str, vector: list[float], limit: int, now: float
    ) -> list[MemoryHit]:
        found = await self._run(
            "search the memories",
            lambda m, call: _similar(m, call, owner, text, vector, prefetch_depth(limit)),
        )
        hits = [
            MemoryHit(
                id=memory.id,
                text=memory.text,
                score=self._decay.score(similarity, memory.created_at, now),
                similarity=similarity,
                timestamp=memory.created_at,
            )
            for memory, similarity in found
        ]
        return sorted(hits, key=lambda hit: hit.score, reverse=True)[:limit]

    async def list_memories(
        self, owner: MemoryOwner, limit: int, after: str | None = None
    ) -> Page[Memory]:
        where = {"user_id": mem0_user_id(owner)}
        items = await self._run("list the memories", lambda m, call: _every(m, where))
        memories = (_memory_from(item, owner) for item in items)
        return newest_first((m for m in memories if m is not None), limit, after)

    async def get(self, owner: MemoryOwner, memory_id: str) -> Memory | None:
        found = await self._run(
            f"read the memory {memory_id!r}", lambda m, call: _find(m, owner, memory_id)
        )
        return found[1] if found else None

    async def update(
        self, owner: MemoryOwner, memory_id: str, text: str, vector: list[float]
    ) -> Memory | None:
        def work(m: Any, call: _Call) -> Memory | None:
            found = _find(m, owner, memory_id)
            if found is None:
                return None
            mem0_id, current = found
            call.know(text, vector)
            m.update(mem0_id, text=text)
            return replace(current, text=text)

        return await self._run(f"update the memory {memory_id!r}", work)

    async def delete(self, owner: MemoryOwner, memory_id: str) -> bool:
        where = {
            "user_id": mem0_user_id(owner),
            KEY: _digest(owner.tenant, owner.user_id, memory_id),
        }
        return bool(await self._run("delete a memory", lambda m, call: _remove(m, where)))

    async def forget(self, owner: MemoryOwner) -> int:
        scope = mem0_user_id(owner)

        def work(m: Any, call: _Call) -> int:
            removed = _remove(m, {"user_id": scope})
            _erase_history(m.db, [], scope)
            return removed

        return await self._run("forget a user", work)

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            points = await self._run("answer", lambda m, call: self._points())
        except MemoryUnavailable as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        where = "a Qdrant server" if self._qdrant[0] else "local Qdrant"
        extraction = "on" if self._extraction else "off"
        detail = f"mem0 on {where}, extraction {extraction}, {points} memories"
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started), detail)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._mem0 is not None:
                self._mem0.close()
                self._mem0 = None
            if self._client is not None:
                self._client.close()  # releases the local path's lock
                self._client = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
        await asyncio.to_thread(self._thread.shutdown)

    # --- on the Mem0 thread --------------------------------------------------------------

    async def _run(self, action: str, work: Callable[[Any, _Call], T]) -> T:
        loop = asyncio.get_running_loop()
        call = _Call(loop, self._timeout_s)

        def run() -> T:
            mem0 = self._open()
            self._embedding.call = call
            try:
                result = work(mem0, call)
            finally:
                self._embedding.call = None
            if call.failure is not None:
                raise call.failure
            return result

        try:
            return await loop.run_in_executor(self._thread, run)
        except MemoryUnavailable:
            raise
        except Exception as exc:  # Mem0 raises what its parts raise: Qdrant, OpenAI, SQLite…
            raise MemoryUnavailable(f"Mem0 could not {action}: {exc}") from exc

    def _add(self, mem0: Any, call: _Call, memory: Memory, vector: list[float]) -> None:
        scope = mem0_user_id(memory.owner)
        turn = _digest(memory.tenant, memory.user_id, memory.id)
        _remove(mem0, {"user_id": scope, TURN: turn})  # replace by id (and a retried turn's facts)
        stored = {
            "tenant": memory.tenant,
            "user_id": memory.user_id,
            "created_at": memory.created_at,
            "metadata": dict(memory.metadata),
        }
        # Mem0's own created_at, when given, is kept: the memory's time, not the storage's.
        metadata: dict[str, Any] = {TURN: turn, "created_at": rfc3339(memory.created_at)}
        messages = [{"role": "user", "content": memory.text}]
        if not self._extraction:
            call.know(memory.text, vector)
            metadata |= {KEY: turn, STORED: {**stored, "id": memory.id}}
            mem0.add(messages, user_id=scope, metadata=metadata, infer=False)
            return
        facts = mem0.add(messages, user_id=scope, metadata=metadata, infer=True)["results"]
        for n, fact in enumerate(facts):
            # Each fact gets a gateway id of its own (its vector is known: Mem0 just made it).
            fact_id = f"{memory.id}.{n}"
            key = _digest(memory.tenant, memory.user_id, fact_id)
            mem0.update(fact["id"], metadata={KEY: key, STORED: {**stored, "id": fact_id}})

    def _open(self) -> Any:
        if self._mem0 is None:
            self._mem0 = self._build()
        return self._mem0

    def _build(self) -> Any:
        self._directory.mkdir(parents=True, exist_ok=True)
        os.environ["MEM0_TELEMETRY"] = "False"  # read once, when Mem0 is imported
        os.environ.setdefault("MEM0_DIR", str(self._directory / "mem0"))  # not ~/.mem0
        try:
            from mem0 import Memory as Mem0
            from mem0.memory import main as mem0_main
            from mem0.memory import telemetry
            from openai import OpenAI
        except ImportError as exc:
            raise MemoryUnavailable("mem0ai is not installed (the gateway's [mem0] extra)") from exc
        telemetry.MEM0_TELEMETRY = mem0_main.MEM0_TELEMETRY = False  # if imported before, on
        # Mem0 logs memories' text at INFO ("Updating memory with data=..."): users' words
        # stay out of the gateway's logs.
        logging.getLogger("mem0").setLevel(max(logging.WARNING, logging.getLogger("mem0").level))
        client = self._connect()
        try:
            self._check_dimension(client)
            mem0 = Mem0.from_config(self._config(client))
        except BaseException:
            client.close()
            raise
        mem0.embedding_model = self._embedding
        if self._extraction:
            # Built here rather than by Mem0: its client would follow OPENROUTER_API_KEY if
            # set, retry twice and wait 10 minutes; the gateway's writer does the retrying.
            base_url, _, api_key = self._llm
            mem0.llm.client = OpenAI(
                base_url=base_url, api_key=api_key, timeout=self._timeout_s, max_retries=0
            )
        self._client = client
        return mem0

    def _connect(self) -> QdrantClient:
        url, api_key = self._qdrant
        if url:
            return QdrantClient(
                url=url,
                api_key=api_key,
                timeout=math.ceil(self._timeout_s),
                check_compatibility=False,
            )
        return QdrantClient(path=str(self._directory / "qdrant"))

    def _check_dimension(self, client: QdrantClient) -> None:
        if not client.collection_exists(self.collection):
            return
        vectors = client.get_collection(self.collection).config.params.vectors
        if getattr(vectors, "size", None) != self.dimension:  # Mem0's: one unnamed vector
            raise MemoryUnavailable(
                f"the Qdrant collection {self.collection!r} does not hold Mem0's "
                f"{self.dimension}-dimension vectors (the embedder's): use another collection"
            )

    def _config(self, client: QdrantClient) -> dict[str, Any]:
        base_url, model, api_key = self._llm
        return {
            "vector_store": {
                "provider": "qdrant",
                "config": {
                    "client": client,
                    "collection_name": self.collection,
                    "embedding_model_dims": self.dimension,
                    "path": str(self._directory / "qdrant"),  # Mem0 wants one; the client rules
                },
            },
            "embedder": {  # replaced by the gateway's once built
                "provider": "openai",
                "config": {
                    "api_key": "unused",
                    "openai_base_url": _NOWHERE,
                    "embedding_dims": self.dimension,
                },
            },
            "llm": {
                "provider": "openai",
                "config": {
                    "model": model or "unused",
                    "api_key": api_key,
                    "openai_base_url": base_url or _NOWHERE,
                },
            },
            "history_db_path": str(self._directory / "history.db"),
        }

    def _points(self) -> int:
        assert self._client is not None  # opened by _run
        return self._client.get_collection(self.collection).points_count or 0


def _similar(
    mem0: Any,
    call: _Call,
    owner: MemoryOwner,
    text: str,
    vector: list[float],
    depth: int,
) -> list[tuple[Memory, float]]:
    """The user's ``depth`` memories most similar to the query, with their cosine (Mem0's
    threshold, within [0, 1], leaves out those pointing away from it)."""
    query = text.strip()
    if not query:
        return []  # Mem0 refuses a blank query
    call.know(query, vector, query=True)
    where = {"user_id": mem0_user_id(owner)}
    found = mem0.search(query, top_k=depth, filters=where, threshold=0.0, explain=True)
    similar = []
    for item in found["results"]:
        memory = _memory_from(item, owner)
        if memory is not None:
            similar.append((memory, min(1.0, item["score_details"]["semantic_score"])))
    return similar


def _every(mem0: Any, where: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Mem0 item matching ``where``: Mem0 lists without an offset, so ask for more
    until fewer come back."""
    top_k = _LIST_PAGE
    while True:
        items: list[dict[str, Any]] = mem0.get_all(filters=dict(where), top_k=top_k)["results"]
        if len(items) < top_k:
            return items
        top_k *= 4


def _find(mem0: Any, owner: MemoryOwner, memory_id: str) -> tuple[str, Memory] | None:
    """Mem0's id and the memory ``memory_id`` of the user, if there is one."""
    where = {"user_id": mem0_user_id(owner), KEY: _digest(owner.tenant, owner.user_id, memory_id)}
    for item in mem0.get_all(filters=where, top_k=1)["results"]:
        memory = _memory_from(item, owner)
        if memory is not None and memory.id == memory_id:
            return item["id"], memory
    return None


def _remove(mem0: Any, where: Mapping[str, str]) -> int:
    ids = [item["id"] for item in _every(mem0, where)]
    for mem0_id in ids:
        mem0.delete(mem0_id)
    _erase_history(mem0.db, ids)
    return len(ids)


def _erase_history(db: Any, mem0_ids: Sequence[str], scope: str | None = None) -> None:
    """Mem0's SQLite history keeps every text a memory had, and the last turns of each
    user for extraction: a deleted memory or a forgotten user leaves nothing there. Mem0
    has no call for it; its own lock guards its connection."""
    with db._lock:
        db.connection.executemany(
            "DELETE FROM history WHERE memory_id = ?", [(mem0_id,) for mem0_id in mem0_ids]
        )
        if scope is not None:
            session = f"user_id={scope}"  # Mem0's session scope of a user_id-only call
            db.connection.execute("DELETE FROM messages WHERE session_scope = ?", (session,))
        db.connection.commit()


def _memory_from(item: Mapping[str, Any], owner: MemoryOwner) -> Memory | None:
    """The gateway memory in a Mem0 item, if it is one of this user's (a fact Mem0 stored
    but the store has not yet given an id is not)."""
    stored = (item.get("metadata") or {}).get(STORED)
    if not isinstance(stored, dict) or "id" not in stored:
        return None
    if (stored["tenant"], stored["user_id"]) != (owner.tenant, owner.user_id):
        return None  # the digest already scopes every query: a second lock on the door
    return Memory(
        stored["id"],
        owner.tenant,
        owner.user_id,
        item["memory"],
        stored["created_at"],
        stored["metadata"],
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)

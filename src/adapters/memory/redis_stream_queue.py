"""``RedisStreamMemoryQueue``: the write-behind queue as a Redis stream read by a consumer
group (``REDIS_URL``), durable across a crash of the gateway.

A turn is an entry (``XADD``) until it is stored: ``take`` delivers it to this consumer
(``XREADGROUP``) and it stays pending in the group until ``ack`` (``XACK`` + ``XDEL``). If
the gateway dies in between, the entry stays pending, and any consumer reclaims it once it
has been idle for ``claim_idle_s`` (``XAUTOCLAIM``): a crash after the response loses
nothing. Delivery is at least once; storing a memory is idempotent (by id).

Redis going away is not a crash: commands are retried (``redis_retry``: briefly on the
request path, for seconds in the writer's calls), and after an outage the next ``take``
re-creates the group (Redis may have restarted empty) and first hands back what was
delivered to this consumer and never acknowledged, without waiting ``claim_idle_s``."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from adapters.memory.redis_retry import BACKGROUND, REQUEST_PATH, RedisLink, RetryPolicy
from domain.health import ServiceHealth
from domain.memory import MemoryTurn

log = structlog.get_logger("gateway.memory.queue")
_FIELD = "turn"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MemoryTurn)  # JSON, not msgpack: fine with decode_responses


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read_entries(response: Any) -> list[tuple[str, Any]]:
    """XREADGROUP's answer for one stream: ``[[stream, entries]]`` (RESP2) or
    ``{stream: [entries]}`` (RESP3); nothing read is ``[]`` or ``None``."""
    if isinstance(response, Mapping):
        entries = [entry for batches in response.values() for batch in batches for entry in batch]
    else:
        entries = [entry for _, batch in response or [] for entry in batch]
    return [(_text(entry_id), fields) for entry_id, fields in entries]


class RedisStreamMemoryQueue:
    """``redis`` is built (and closed) by the caller; its ``socket_timeout`` must exceed
    the writer's ``wait_s``, which blocks a read that long. The group is created on first
    use (and again if Redis lost it). Entries that cannot be decoded are moved to
    ``<stream>:dead`` rather than retried forever. ``put``, ``depth`` and ``check`` are on
    the request path (``request_path`` policy); ``take``, ``ack`` and ``retry`` are the
    writer's (``background``)."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str = "gateway:memory:turns",
        group: str = "memory-writers",
        consumer: str | None = None,
        claim_idle_s: float = 60.0,
        health_name: str = "redis",
        request_path: RetryPolicy = REQUEST_PATH,
        background: RetryPolicy = BACKGROUND,
        link: RedisLink | None = None,
    ) -> None:
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.health_name = health_name
        self._redis = redis
        self._claim_idle_ms = max(1, int(claim_idle_s * 1000))
        self._request_path = request_path
        self._background = background
        self._link = link or RedisLink("memory_queue")
        self._group_ready = False
        self._recovered_from = 0  # the link's interruptions recovered from

    async def put(self, turn: MemoryTurn) -> None:
        encoded = _encoder.encode(turn)
        await self._link.run(
            "queue a turn",
            lambda: self._redis.xadd(self.stream, {_FIELD: encoded}),
            self._request_path,
        )

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, MemoryTurn]]:
        return await self._link.run(
            "take turns", lambda: self._take(max_items, wait_s), self._background
        )

    async def _take(self, max_items: int, wait_s: float) -> list[tuple[str, MemoryTurn]]:
        try:
            entries = await self._entries(max_items, wait_s)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # Redis restarted empty, or the stream was deleted
            entries = await self._entries(max_items, wait_s)
        return await self._decoded(entries)

    async def _entries(self, max_items: int, wait_s: float) -> list[tuple[str, Any]]:
        interruptions = self._link.interruptions
        if interruptions != self._recovered_from:
            # Redis was out of reach: it may have restarted empty (no group any more), and
            # what it delivered here before may never have been stored or acknowledged
            # (the writer takes again only once it is done with what it took).
            self._group_ready = False
            await self._ensure_group()
            own = _read_entries(
                await self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: "0"}, count=max_items
                )
            )
            if own:
                return own
            self._recovered_from = interruptions
        await self._ensure_group()
        # First what a dead consumer (or this one) left pending too long, then new turns.
        claimed = await self._redis.xautoclaim(
            self.stream, self.group, self.consumer, self._claim_idle_ms, "0-0", count=max_items
        )
        if claimed[1]:
            return [(_text(entry_id), fields) for entry_id, fields in claimed[1]]
        block = max(1, round(wait_s * 1000)) if wait_s > 0 else None
        response = await self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=max_items, block=block
        )
        return _read_entries(response)

    async def _decoded(self, entries: list[tuple[str, Any]]) -> list[tuple[str, MemoryTurn]]:
        turns, dead = [], []
        for entry_id, fields in entries:
            raw = (fields or {}).get(_FIELD.encode(), (fields or {}).get(_FIELD))
            try:
                if not isinstance(raw, bytes | str):
                    raise msgspec.DecodeError(f"no {_FIELD!r} field")
                turns.append((entry_id, _decoder.decode(raw)))
            except msgspec.DecodeError:  # a ValidationError too
                dead.append((entry_id, fields))
        for entry_id, fields in dead:
            log.error("memory_queue_dead_letter", entry_id=entry_id, moved_to=f"{self.stream}:dead")
            async with self._redis.pipeline(transaction=True) as pipe:
                if fields:
                    pipe.xadd(f"{self.stream}:dead", dict(fields))
                pipe.xack(self.stream, self.group, entry_id)
                pipe.xdel(self.stream, entry_id)
                await pipe.execute()
        return turns

    async def ack(self, receipts: list[str]) -> None:
        if not receipts:
            return

        async def drop() -> None:  # XACK and XDEL twice are harmless: retried
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, *receipts)
                pipe.xdel(self.stream, *receipts)
                await pipe.execute()

        await self._link.run("acknowledge turns", drop, self._background)

    async def retry(self, receipt: str, turn: MemoryTurn) -> None:
        again = replace(turn, attempts=turn.attempts + 1)

        async def requeue() -> None:
            # One transaction: the turn is queued again and the old entry dropped together
            # (twice, if retried after a lost answer: stored by id, the copy is harmless).
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self.stream, {_FIELD: _encoder.encode(again)})
                pipe.xack(self.stream, self.group, receipt)
                pipe.xdel(self.stream, receipt)
                await pipe.execute()

        await self._link.run("put a turn back", requeue, self._background)

    async def depth(self) -> int:
        """Turns not yet stored: acknowledged entries are deleted, so the stream's length."""
        length = await self._link.run(
            "count the queued turns", lambda: self._redis.xlen(self.stream), self._request_path
        )
        return int(length)

    async def check(self) -> ServiceHealth:
        """UNHEALTHY, saying since when and why, while Redis is out of reach."""
        return await self._link.check(self.health_name, self._redis.ping)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the stream's start: turns queued before any writer existed count too.
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

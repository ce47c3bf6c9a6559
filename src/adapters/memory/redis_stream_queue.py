"""``RedisStreamMemoryQueue``: the write-behind queue as a Redis stream read by a consumer
group (``REDIS_URL``), durable across a crash of the gateway.

A turn is an entry (``XADD``) until it is stored: ``take`` delivers it to this consumer
(``XREADGROUP``) and it stays pending in the group until ``ack`` (``XACK`` + ``XDEL``). If
the gateway dies in between, the entry stays pending, and any consumer reclaims it once it
has been idle for ``claim_idle_s`` (``XAUTOCLAIM``): a crash after the response loses
nothing. Delivery is at least once; storing a memory is idempotent (by id)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from domain.errors import MemoryUnavailable
from domain.health import ServiceHealth, Status
from domain.memory import MemoryTurn

log = logging.getLogger("gateway.memory.queue")
_FIELD = "turn"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MemoryTurn)  # JSON, not msgpack: fine with decode_responses


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise MemoryUnavailable(f"Redis could not {action}: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read_entries(response: Any) -> list[Any]:
    """XREADGROUP's answer for one stream: ``[[stream, entries]]`` (RESP2) or
    ``{stream: [entries]}`` (RESP3); nothing read is ``[]`` or ``None``."""
    if isinstance(response, Mapping):
        return [entry for batches in response.values() for batch in batches for entry in batch]
    return [entry for _, entries in response or [] for entry in entries]


class RedisStreamMemoryQueue:
    """``redis`` is built (and closed) by the caller; its ``socket_timeout`` must exceed
    the writer's ``wait_s``, which blocks a read that long. The group is created on first
    use (and again if Redis lost it). Entries that cannot be decoded are moved to
    ``<stream>:dead`` rather than retried forever."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str = "gateway:memory:turns",
        group: str = "memory-writers",
        consumer: str | None = None,
        claim_idle_s: float = 60.0,
        health_name: str = "redis",
    ) -> None:
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.health_name = health_name
        self._redis = redis
        self._claim_idle_ms = max(1, int(claim_idle_s * 1000))
        self._group_ready = False

    async def put(self, turn: MemoryTurn) -> None:
        with _translated("queue a turn"):
            await self._redis.xadd(self.stream, {_FIELD: _encoder.encode(turn)})

    async def take(self, max_items: int, wait_s: float) -> list[tuple[str, MemoryTurn]]:
        with _translated("take turns"):
            try:
                entries = await self._entries(max_items, wait_s)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # Redis restarted empty, or the stream was deleted
                entries = await self._entries(max_items, wait_s)
            return await self._decoded(entries)

    async def _entries(self, max_items: int, wait_s: float) -> list[tuple[str, Any]]:
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
        return [(_text(entry_id), fields) for entry_id, fields in _read_entries(response)]

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
            log.error(
                "memory queue: entry %s is not a turn; moved to %s:dead", entry_id, self.stream
            )
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
        with _translated("acknowledge turns"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, *receipts)
                pipe.xdel(self.stream, *receipts)
                await pipe.execute()

    async def retry(self, receipt: str, turn: MemoryTurn) -> None:
        again = replace(turn, attempts=turn.attempts + 1)
        with _translated("put a turn back"):
            # One transaction: the turn is queued again and the old entry dropped together.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self.stream, {_FIELD: _encoder.encode(again)})
                pipe.xack(self.stream, self.group, receipt)
                pipe.xdel(self.stream, receipt)
                await pipe.execute()

    async def depth(self) -> int:
        """Turns not yet stored: acknowledged entries are deleted, so the stream's length."""
        with _translated("count the queued turns"):
            return int(await self._redis.xlen(self.stream))

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            with _translated("answer"):
                await self._redis.ping()
        except MemoryUnavailable as exc:
            elapsed = round((time.perf_counter() - started) * 1000, 2)
            return ServiceHealth(self.health_name, Status.UNHEALTHY, elapsed, str(exc))
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return ServiceHealth(self.health_name, Status.HEALTHY, elapsed)

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

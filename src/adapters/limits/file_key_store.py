"""``FileKeyStore``: managed keys in one JSON file under the data directory, the embedded
default.

SINGLE PROCESS ONLY. The file is read once (at ``load()``, or the first call) and then the
process's memory is the truth: a second process (or a second gateway instance) on the same
file would neither see this one's keys nor keep its own writes from being overwritten.
Several instances need ``RedisKeyStore``.

Keys (by hash, never the secret) and per-period token usage share the file, which is
rewritten whole and atomically (a temporary file in the same directory, fsync, then
``os.replace``): a crash leaves the old file or the new one, never half of one. A create or
a revoke is written before the call returns; usage and ``last_used_at`` are written at
most once per ``flush_interval_s`` (one second), so a crash loses at most that much
usage. A failed write is retried on the same timer; a create that could not be written is
undone and reported (``BackendUnavailable``), a revoke holds in memory at once. ``close()``
writes what is pending."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import msgspec

from domain.errors import BackendUnavailable, InvalidRequest
from domain.health import ServiceHealth, Status
from domain.limits import ManagedKey

log = logging.getLogger("gateway.keys")
KEPT_PERIODS = 3  # usage of older periods is dropped: the file does not grow forever


class _KeysFile(msgspec.Struct):
    version: int = 1
    keys: list[ManagedKey] = msgspec.field(default_factory=list)
    usage: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_KeysFile)


def normalized(key: ManagedKey) -> ManagedKey:
    """``allowed_models`` as a tuple, whatever sequence it came as (and comes back as)."""
    models = key.policy.allowed_models
    if models is None or isinstance(models, tuple):
        return key
    return replace(key, policy=replace(key.policy, allowed_models=tuple(models)))


class FileKeyStore:
    def __init__(
        self, path: Path, *, flush_interval_s: float = 1.0, health_name: str = "key_store"
    ) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.health_name = health_name
        self._keys: dict[str, ManagedKey] | None = None
        self._by_hash: dict[str, str] = {}
        self._usage: dict[str, dict[str, int]] = {}
        self._write_lock = asyncio.Lock()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read the file now (a missing one is an empty store); the composition root calls
        it at start so that an unreadable file fails there, not at the first request."""
        self._loaded()

    async def create(self, key: ManagedKey) -> None:
        keys = self._loaded()
        if key.id in keys or key.key_hash in self._by_hash:
            raise InvalidRequest(f"A key with this id or hash exists already: {key.id}")
        keys[key.id] = normalized(key)
        self._by_hash[key.key_hash] = key.id
        try:
            await self._write()
        except BackendUnavailable:
            del keys[key.id], self._by_hash[key.key_hash]  # not created: the caller was told
            raise

    async def find_by_hash(self, key_hash: str) -> ManagedKey | None:
        keys = self._loaded()
        key_id = self._by_hash.get(key_hash)
        return None if key_id is None else keys.get(key_id)

    async def get(self, key_id: str) -> ManagedKey | None:
        return self._loaded().get(key_id)

    async def list_keys(self) -> list[ManagedKey]:
        return sorted(self._loaded().values(), key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, now: float) -> bool:
        keys = self._loaded()
        key = keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return False
        keys[key_id] = replace(key, revoked_at=now)
        await self._write()
        return True

    async def touch(self, key_id: str, now: float) -> None:
        keys = self._loaded()
        key = keys.get(key_id)
        if key is not None:
            keys[key_id] = replace(key, last_used_at=now)
            self._schedule_flush()

    async def add_usage(self, key_id: str, period: str, tokens: int) -> int:
        self._loaded()
        periods = self._usage.setdefault(key_id, {})
        periods[period] = periods.get(period, 0) + tokens
        self._schedule_flush()
        return periods[period]

    async def reserve_usage(
        self, key_id: str, period: str, tokens: int, quota: int
    ) -> tuple[bool, int]:
        self._loaded()
        # No await between reading and adding: atomic on the event loop.
        periods = self._usage.setdefault(key_id, {})
        used = periods.get(period, 0)
        if used + tokens > quota:
            return False, used
        periods[period] = used + tokens
        self._schedule_flush()
        return True, periods[period]

    async def usage(self, key_id: str, period: str) -> int:
        self._loaded()
        return self._usage.get(key_id, {}).get(period, 0)

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            self._loaded()
            status, detail = Status.HEALTHY, None
        except BackendUnavailable as exc:
            status, detail = Status.UNHEALTHY, str(exc)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return ServiceHealth(self.health_name, status, elapsed, detail)

    async def close(self) -> None:
        """Write pending usage and stop the flush timer."""
        self._cancel_timer()
        if self._flush_task is not None:
            await self._flush_task
        if self._keys is not None:
            try:
                await self._write()
            finally:
                self._cancel_timer()  # a failed last write is not retried after close

    def _cancel_timer(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    # --- the file -----------------------------------------------------------------------

    def _loaded(self) -> dict[str, ManagedKey]:
        if self._keys is not None:
            return self._keys
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            stored = _KeysFile()
        except OSError as exc:
            raise BackendUnavailable(f"Cannot read the keys file {self.path}: {exc}") from exc
        else:
            try:
                stored = _decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise BackendUnavailable(f"The keys file {self.path} is corrupt: {exc}") from exc
        self._keys = {key.id: normalized(key) for key in stored.keys}
        self._by_hash = {key.key_hash: key.id for key in stored.keys}
        self._usage = stored.usage
        return self._keys

    def _schedule_flush(self) -> None:
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self.flush_interval_s, self._flush_due)

    def _flush_due(self) -> None:
        self._flush_timer = None
        self._flush_task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            await self._write()
        except BackendUnavailable as exc:  # _write has scheduled the next attempt
            log.error("keys file not written, retrying: %s", exc)

    async def _write(self) -> None:
        async with self._write_lock:
            # The snapshot is taken under the lock: writes land in the order they were made.
            snapshot = _encoder.encode(
                _KeysFile(keys=list((self._keys or {}).values()), usage=self._pruned_usage())
            )
            try:
                await asyncio.to_thread(self._replace_file, snapshot)
            except OSError as exc:
                # Memory stays the truth (a revocation holds in this process): retried.
                self._schedule_flush()
                raise BackendUnavailable(f"Cannot write the keys file {self.path}: {exc}") from exc

    def _pruned_usage(self) -> dict[str, dict[str, int]]:
        # Period labels of one kind sort by date: the last ones are the latest.
        self._usage = {
            key_id: dict(sorted(periods.items())[-KEPT_PERIODS:])
            for key_id, periods in self._usage.items()
        }
        return self._usage

    def _replace_file(self, content: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: mode 0600, a unique name in the same directory (same filesystem).
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

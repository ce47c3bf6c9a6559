"""The KeyStore contract, run on every adapter (fake, a JSON file, Redis on a real private
redis-server): keys by id and by hash, revocation, last use, usage per period, and never
a secret in storage; then what only one adapter promises: the file's durability and
flushes, Redis's usage expiry and its faults."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.limits.file_key_store import FileKeyStore
from adapters.limits.redis_key_store import RedisKeyStore
from domain.errors import BackendUnavailable, InvalidRequest
from domain.health import Status
from domain.limits import KeyPolicy, ManagedKey, QuotaPeriod
from tests.conftest import free_port

if TYPE_CHECKING:
    from tests.contract.limits_fixtures import KeyStoreUnderTest

pytest_plugins = ["tests.contract.limits_fixtures"]

NOW = 1_700_000_000.0
POLICY = KeyPolicy(
    allowed_models=("fake-model", "fake-model-2"),
    max_tokens_cap=512,
    token_quota=100_000,
    quota_period=QuotaPeriod.DAY,
)


def new_key(name: str, *, created_at: float = NOW, policy: KeyPolicy = POLICY) -> ManagedKey:
    secret = f"sk-gw-{uuid.uuid4().hex}"
    return ManagedKey(
        id=f"key_{uuid.uuid4().hex[:16]}",
        name=name,
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        tier="developer",
        tenant="acme",
        created_at=created_at,
        policy=policy,
    )


async def test_created_keys_are_found_by_id_and_by_hash_and_listed(
    key_store: KeyStoreUnderTest,
) -> None:
    store = key_store.store
    older = new_key("ci", created_at=NOW - 60)
    newer = new_key("laptop", policy=KeyPolicy())
    await store.create(newer)
    await store.create(older)
    assert await store.get(newer.id) == newer
    assert await store.get(older.id) == older, "policy, models and period survive"
    assert await store.find_by_hash(older.key_hash) == older
    assert await store.list_keys() == [older, newer], "oldest first"
    assert await store.get("key_missing") is None
    assert await store.find_by_hash("0" * 64) is None


async def test_a_taken_id_or_hash_is_refused(key_store: KeyStoreUnderTest) -> None:
    store = key_store.store
    key = new_key("one")
    await store.create(key)
    with pytest.raises(InvalidRequest):
        await store.create(replace(new_key("same id"), id=key.id))
    with pytest.raises(InvalidRequest):
        await store.create(replace(new_key("same hash"), key_hash=key.key_hash))
    assert await store.list_keys() == [key]
    assert await store.find_by_hash(key.key_hash) == key


async def test_a_revoked_key_is_still_found_and_revoking_again_is_false(
    key_store: KeyStoreUnderTest,
) -> None:
    store = key_store.store
    key, other = new_key("doomed"), new_key("kept")
    await store.create(key)
    await store.create(other)
    assert await store.revoke(key.id, NOW + 5) is True
    revoked = await store.find_by_hash(key.key_hash)
    assert revoked is not None
    assert revoked.revoked_at == NOW + 5, "the caller refuses it"
    assert await store.revoke(key.id, NOW + 9) is False
    assert (await store.get(key.id)) == revoked, "the first revocation stands"
    assert await store.revoke("key_missing", NOW) is False
    assert (await store.get(other.id)) == other


async def test_touch_records_the_last_use(key_store: KeyStoreUnderTest) -> None:
    store = key_store.store
    key = new_key("used")
    await store.create(key)
    await store.touch(key.id, NOW + 1)
    await store.touch(key.id, NOW + 2)
    touched = await store.get(key.id)
    assert touched is not None
    assert touched.last_used_at == NOW + 2
    await store.touch("key_missing", NOW)
    assert await store.get("key_missing") is None, "no record made up for an unknown id"
    assert len(await store.list_keys()) == 1


async def test_usage_adds_up_per_key_and_period(key_store: KeyStoreUnderTest) -> None:
    store = key_store.store
    assert await store.usage("key_a", "2026-11") == 0
    assert await store.add_usage("key_a", "2026-11", 120) == 120
    assert await store.add_usage("key_a", "2026-11", 30) == 150
    assert await store.add_usage("key_a", "2026-12", 7) == 7
    assert await store.add_usage("key_b", "2026-11", 1) == 1
    assert await store.usage("key_a", "2026-11") == 150
    assert await store.usage("key_a", "2026-12") == 7
    assert await store.usage("key_b", "2026-11") == 1
    assert await store.usage("key_b", "2026-11-26") == 0


async def test_reservations_never_take_usage_above_the_quota(
    key_store: KeyStoreUnderTest,
) -> None:
    store = key_store.store
    assert await store.reserve_usage("key_a", "2026-11", 60, 100) == (True, 60)
    assert await store.reserve_usage("key_a", "2026-11", 41, 100) == (False, 60)
    assert await store.reserve_usage("key_a", "2026-11", 40, 100) == (True, 100)
    assert await store.add_usage("key_a", "2026-11", -30) == 70  # settled below the estimate
    results = await asyncio.gather(
        *(store.reserve_usage("key_b", "2026-11", 7, 100) for _ in range(50))
    )
    assert sum(done for done, _ in results) == 14
    assert await store.usage("key_b", "2026-11") == 98


async def test_the_secret_is_never_stored(key_store: KeyStoreUnderTest) -> None:
    secret = f"sk-gw-{uuid.uuid4().hex}"
    key = ManagedKey(
        "key_secretive", "secretive", hashlib.sha256(secret.encode()).hexdigest(),
        "standard", "acme", NOW, POLICY,
    )  # fmt: skip
    await key_store.store.create(key)
    await key_store.store.touch(key.id, NOW)
    await key_store.store.add_usage(key.id, "2026-11", 10)
    await key_store.store.revoke(key.id, NOW)
    stored = await key_store.stored_bytes()
    assert key.key_hash.encode() in stored, "the search looks where the key is"
    assert secret.encode() not in stored
    assert secret.removeprefix("sk-gw-").encode() not in stored


async def test_check_is_healthy(key_store: KeyStoreUnderTest) -> None:
    assert (await key_store.store.check()).status is Status.HEALTHY


async def test_a_new_store_on_the_same_storage_sees_everything(
    durable_key_store: KeyStoreUnderTest,
) -> None:
    store = durable_key_store.store
    kept, revoked = new_key("kept", created_at=NOW - 1), new_key("revoked")
    await store.create(kept)
    await store.create(revoked)
    await store.revoke(revoked.id, NOW + 1)
    await store.touch(kept.id, NOW + 2)
    await store.add_usage(kept.id, "2026-11", 42)
    assert durable_key_store.reopen is not None
    again = await durable_key_store.reopen()
    keys = await again.list_keys()
    assert [k.id for k in keys] == [kept.id, revoked.id]
    assert keys[0].last_used_at == NOW + 2
    assert keys[1].revoked_at == NOW + 1
    assert await again.find_by_hash(kept.key_hash) == keys[0]
    assert await again.usage(kept.id, "2026-11") == 42
    assert await again.revoke(revoked.id, NOW + 3) is False


# --- the file only -----------------------------------------------------------------------


async def test_file_usage_is_written_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = FileKeyStore(path, flush_interval_s=0.05)
    key = new_key("busy")
    await store.create(key)
    await store.add_usage(key.id, "2026-11", 5)
    await store.touch(key.id, NOW)
    deadline = time.monotonic() + 10
    while await FileKeyStore(path).usage(key.id, "2026-11") != 5:  # no close(): the timer
        assert time.monotonic() < deadline, "usage was never written"
        await asyncio.sleep(0.02)
    assert (await FileKeyStore(path).get(key.id)) == await store.get(key.id)
    await store.close()


async def test_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys.json"
    store = FileKeyStore(path)
    for n in range(3):
        await store.create(new_key(f"k{n}"))
    await store.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json"], "no temporary left"


async def test_a_corrupt_file_is_backend_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"id": ')
    store = FileKeyStore(path)
    with pytest.raises(BackendUnavailable, match="corrupt"):
        await store.load()
    with pytest.raises(BackendUnavailable):
        await store.get("key_a")
    assert (await store.check()).status is Status.UNHEALTHY


async def test_a_create_the_file_cannot_take_is_undone(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "data" / "keys.json")
    await store.load()  # nothing there yet: an empty store
    (tmp_path / "data").write_text("a file where the directory should be")
    key = new_key("unwritable")
    with pytest.raises(BackendUnavailable, match="Cannot write"):
        await store.create(key)
    assert await store.get(key.id) is None
    assert await store.find_by_hash(key.key_hash) is None
    with pytest.raises(BackendUnavailable):
        await store.close()


async def test_file_keeps_the_latest_periods_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    for month in range(1, 7):
        await store.add_usage("key_a", f"2026-{month:02d}", month)
    await store.close()
    again = FileKeyStore(path)
    assert [await again.usage("key_a", f"2026-{m:02d}") for m in range(1, 7)] == [0, 0, 0, 4, 5, 6]


# --- Redis only --------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_usage_outlives_its_period_then_expires(redis_client: Redis) -> None:
    store = RedisKeyStore(redis_client, prefix="test:keys:ttl")
    await store.add_usage("key_a", "2026-11-26", 1)
    await store.add_usage("key_a", "2026-11", 1)
    day_ttl = await redis_client.ttl("test:keys:ttl:usage:key_a:2026-11-26")
    month_ttl = await redis_client.ttl("test:keys:ttl:usage:key_a:2026-11")
    assert 86_400 < day_ttl <= 8 * 86_400
    assert 31 * 86_400 < month_ttl <= 62 * 86_400


@pytest.mark.redis
async def test_a_closed_port_is_backend_unavailable() -> None:
    client = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    store = RedisKeyStore(client)
    try:
        for call in (
            store.create(new_key("x")),
            store.find_by_hash("0" * 64),
            store.get("key_a"),
            store.list_keys(),
            store.revoke("key_a", NOW),
            store.touch("key_a", NOW),
            store.add_usage("key_a", "2026-11", 1),
            store.usage("key_a", "2026-11"),
        ):
            with pytest.raises(BackendUnavailable):
                await call
        assert (await store.check()).status is Status.UNHEALTHY
    finally:
        await client.aclose()

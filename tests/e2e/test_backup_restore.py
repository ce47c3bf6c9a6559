"""The README's backup and restore, tried: what a gateway stored (a document, a memory,
a managed key) is found again by a gateway started on the restored copy, and not by
one started on the wiped directory (each gateway the app in process: stopped, it has
run its graceful shutdown, as a SIGTERM would).

Embedded profile: stop the gateway, copy GATEWAY_DATA_DIR, restore by copying it back.
With REDIS_URL, Redis's own persistence (an RDB snapshot) keeps the managed keys."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.conftest import start_fake_upstream, stop
from tests.e2e.clients import Gateway, api_client
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY
from tests.in_process import InProcessGateway, in_process_gateway

TOKEN = "BACKUP-ZEBRA-4471"
DOCUMENT = {
    "text": f"The vault code for the backup drill is {TOKEN}. Keep it safe.",
    "source": "backup-drill.md",
}
USER = "backup-user"
MEMORY = "Prefers restores that are tried, not hoped for."


@contextmanager
def gateway(env: Mapping[str, str], tmp: Path, data: Path) -> Iterator[InProcessGateway]:
    # Leaving the block stops the app as SIGTERM stops the server: a graceful stop.
    with in_process_gateway({**env, "GATEWAY_DATA_DIR": str(data)}, tmp) as started:
        yield started


def client(gateway: Gateway, key: str) -> httpx.Client:
    return api_client(gateway, key, timeout=60)


def store_everything(gateway: Gateway) -> str:
    """A document, a memory and a managed key; returns the key's secret."""
    with client(gateway, DEVELOPER_KEY) as developer:
        assert developer.post("/v1/documents", json=DOCUMENT).status_code == 201
    with client(gateway, STANDARD_KEY) as standard:
        added = standard.post("/v1/memories", json={"user_id": USER, "text": MEMORY})
        assert added.status_code == 201, added.text
    with client(gateway, ADMIN_KEY) as admin:
        created = admin.post("/v1/keys", json={"name": "backup-drill"})
        assert created.status_code == 201, created.text
    return str(created.json()["key"])


def found(gateway: Gateway, managed_key: str) -> dict[str, Any]:
    """What the gateway finds of what ``store_everything`` stored."""
    with client(gateway, STANDARD_KEY) as standard:
        hits = standard.post("/v1/rag/search", json={"query": TOKEN, "k": 3})
        assert hits.status_code == 200, hits.text
        memories = standard.get("/v1/memories", params={"user_id": USER})
        assert memories.status_code == 200, memories.text
    with client(gateway, managed_key) as managed:
        key_status = managed.get("/v1/models").status_code
    return {
        "document": any(TOKEN in hit["text"] for hit in hits.json()["data"]),
        "memory": [m["text"] for m in memories.json()["data"]] == [MEMORY],
        "key": key_status == 200,
    }


def copy_back(backup: Path, data: Path) -> None:
    """Wipe, then restore by copying the backup back (as the README says)."""
    shutil.rmtree(data)
    subprocess.run(["cp", "-a", str(backup), str(data)], check=True)


@pytest.mark.llama
def test_embedded_data_directory_backup_restores_everything(tmp_path: Path) -> None:
    """Zero configuration: the embedded model, Qdrant Edge shards and keys.json."""
    data, backup = tmp_path / "data", tmp_path / "backup"
    with gateway({}, tmp_path, data) as first:
        managed_key = store_everything(first)
        assert found(first, managed_key) == {"document": True, "memory": True, "key": True}
    # Backup: the gateway is stopped; copy GATEWAY_DATA_DIR.
    subprocess.run(["cp", "-a", str(data), str(backup)], check=True)

    shutil.rmtree(data)
    with gateway({}, tmp_path, data) as wiped:
        assert found(wiped, managed_key) == {"document": False, "memory": False, "key": False}

    copy_back(backup, data)
    with gateway({}, tmp_path, data) as restored:
        assert found(restored, managed_key) == {"document": True, "memory": True, "key": True}


@pytest.mark.redis
def test_redis_snapshot_restores_the_managed_keys(tmp_path: Path) -> None:
    """With REDIS_URL the managed keys live in Redis: its RDB snapshot brings them back
    (documents and memories stay in the data directory: Qdrant Edge here)."""
    from tests.contract.memory_fixtures import start_redis

    upstream = start_fake_upstream("--models", "fake-model")
    redis_dir, redis_backup = tmp_path / "redis", tmp_path / "redis-backup"
    data, backup = tmp_path / "data", tmp_path / "backup"
    redis_dir.mkdir()
    redis = start_redis(redis_dir)
    env = {
        "MAX_SERVE_URL": upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
    }
    try:
        with gateway(env, tmp_path, data) as first:
            managed_key = store_everything(first)
        with Redis(host="127.0.0.1", port=redis.port, socket_timeout=5) as probe:
            probe.save()  # the RDB snapshot (dump.rdb), as `--save` rules would write it
        redis.kill()
        subprocess.run(["cp", "-a", str(redis_dir), str(redis_backup)], check=True)
        subprocess.run(["cp", "-a", str(data), str(backup)], check=True)

        copy_back(redis_backup, redis_dir)
        copy_back(backup, data)
        redis = start_redis(redis_dir)  # loads dump.rdb at start
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/0"
        with gateway(env, tmp_path, data) as restored:
            assert found(restored, managed_key) == {"document": True, "memory": True, "key": True}
    finally:
        redis.kill()
        stop(upstream.process)

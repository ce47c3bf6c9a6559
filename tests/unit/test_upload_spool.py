"""Spooled uploads: a spool a dead worker left behind is removed once it is stale, a
fresh one (an upload in progress in another worker) never."""

from __future__ import annotations

import os
import time
from pathlib import Path

from adapters.http.upload_spool import STALE_AFTER_S, _new_spool


def test_only_stale_spools_are_removed(tmp_path: Path) -> None:
    stale, fresh = tmp_path / "upload-dead", tmp_path / "upload-busy"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "0.part").write_bytes(b"x")
    old = time.time() - STALE_AFTER_S - 60
    os.utime(stale, (old, old))

    spool = _new_spool(tmp_path)

    assert not stale.exists()
    assert (fresh / "0.part").exists()
    assert spool.parent == tmp_path
    assert spool.name.startswith("upload-")

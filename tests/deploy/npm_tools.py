"""Node tools the deployment tests run (newman, dclint), installed on first use with
``npm install --prefix`` into ``.cache/<tool>`` inside the clone (gitignored)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"


def npm_tool(package: str, version: str, binary: str) -> Path:
    """The path of ``binary`` from ``package@version``, installing it if missing.

    Without npm the test is skipped on a developer's machine and fails in CI."""
    prefix = CACHE / package
    executable = prefix / "node_modules" / ".bin" / binary
    if executable.exists():
        return executable
    npm = shutil.which("npm")
    if npm is None:
        message = f"npm is needed to install {package} (apt-get install npm)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    prefix.mkdir(parents=True, exist_ok=True)
    # Two test sessions may install at once: one installs, the other waits.
    with (CACHE / f"{package}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not executable.exists():
            done = subprocess.run(
                [npm, "install", "--prefix", str(prefix), f"{package}@{version}",
                 "--no-audit", "--no-fund", "--loglevel=error"],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if done.returncode != 0 or not executable.exists():
                pytest.fail(f"npm install {package}@{version} failed:\n{done.stderr}")
    return executable

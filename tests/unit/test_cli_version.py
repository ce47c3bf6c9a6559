"""``gateway --version`` prints the version the running gateway reports in /health."""

from __future__ import annotations

import subprocess
import sys

from gateway import __version__


def test_version_is_printed_and_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gateway {__version__}"

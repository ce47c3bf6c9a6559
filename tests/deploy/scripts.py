"""The repository's scripts (``scripts/*.py``, not a package), loaded as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        Path(filename).stem.replace("-", "_"), SCRIPTS / filename
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

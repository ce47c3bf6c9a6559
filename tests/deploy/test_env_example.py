""".env.gateway.example is what scripts/gen-env-example.py makes of the settings, and its
defaults are the settings' own."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from gateway.settings import FIELDS, Settings, env_name, load_settings
from tests.deploy.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.gateway.example"
LINE = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(.*)$")


def generator() -> ModuleType:
    return load_script("gen-env-example.py")


def example_values() -> dict[str, str]:
    return dict(m.groups() for line in EXAMPLE.read_text().splitlines() if (m := LINE.match(line)))


def test_committed_file_is_the_generated_one() -> None:
    assert EXAMPLE.read_text() == generator().render(), (
        ".env.gateway.example is out of date: run `make env-example`"
    )


def test_lists_every_setting_once() -> None:
    names = [n for n in example_values() if n in {env_name(f) for f in FIELDS}]
    assert sorted(names) == sorted(env_name(f) for f in FIELDS)
    assert len(names) == len(set(names))


def test_every_setting_is_explained() -> None:
    text = EXAMPLE.read_text()
    for field in FIELDS:
        block = text.split(f"\n# {env_name(field)}=")[0].rsplit("\n\n", 1)[-1]
        assert block.startswith("# "), f"{env_name(field)} is not explained"
        assert len(block) > 10, f"{env_name(field)} is not explained"


def test_defaults_read_back_as_the_settings_defaults(tmp_path: Path) -> None:
    """Uncommented, the file configures exactly the defaults."""
    settings_names = {env_name(f) for f in FIELDS}
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "".join(f"{k}={v}\n" for k, v in example_values().items() if k in settings_names)
    )
    assert load_settings({}, dotenv=dotenv) == Settings()

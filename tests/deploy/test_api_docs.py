"""docs/api.md is what scripts/gen-api-docs.py makes of the app's OpenAPI schema: an
API change without a regenerated reference fails here."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_script("gen-api-docs.py")


@pytest.fixture(scope="module")
def generated(generator: ModuleType) -> str:
    return str(generator.generate())


def test_committed_reference_is_the_generated_one(generated: str) -> None:
    assert REFERENCE.read_text() == generated, (
        "docs/api.md is out of date: run `python scripts/gen-api-docs.py --write`"
    )


def test_every_operation_of_the_schema_has_a_section(generator: ModuleType) -> None:
    from gateway.asgi import build
    from gateway.settings import Settings

    app = build(Settings()).app  # type: ignore[attr-defined]
    schema = app.openapi_schema.to_schema()
    text = REFERENCE.read_text()
    for method, path, _ in generator.operations(schema):
        assert f"\n### {method.upper()} {path}\n" in text


def test_bounds_and_auth_are_documented(generated: str) -> None:
    chat = generated.split("\n### POST /v1/chat\n", 1)[1].split("\n### ", 1)[0]
    assert "tier **standard** or above" in chat
    assert "| `rag_k` | integer | no | ≥ 1; ≤ 10; default `3` |" in chat
    keys = generated.split("\n### POST /v1/keys\n", 1)[1].split("\n### ", 1)[0]
    assert "tier **admin** or above" in keys
    health = generated.split("\n### GET /health\n", 1)[1].split("\n### ", 1)[0]
    assert "Auth: none." in health

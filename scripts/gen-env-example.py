#!/usr/bin/env python3
"""Writes ``.env.gateway.example`` from the settings object, so the two never drift.

Every field of ``gateway.settings.Settings`` becomes one commented ``NAME=default`` line
under its docstring (a field's docstring is the string right after it in the class body,
read with ``ast``: Python keeps no such docstrings at run time).

    python scripts/gen-env-example.py            print it
    python scripts/gen-env-example.py --write    write .env.gateway.example
    python scripts/gen-env-example.py --check    exit 1 if the committed file differs
"""

from __future__ import annotations

import ast
import json
import re
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

import generated_file  # noqa: E402
import msgspec  # noqa: E402

from gateway.settings import CLIENT_NAMES, FIELDS, Settings, env_name  # noqa: E402

SETTINGS_SOURCE = ROOT / "src" / "gateway" / "settings.py"
TARGET = ROOT / ".env.gateway.example"
WIDTH = 88

HEADER = """\
# Every setting the gateway reads, with its default. Generated from
# src/gateway/settings.py by scripts/gen-env-example.py: do not edit by hand
# (`make env-example` rewrites it; a test fails when the two differ).
#
# Copy it to .env (read from the gateway's working directory; the environment wins
# over it) and uncomment what you change. An unknown GATEWAY_* name or a malformed
# value stops the start with a message naming the variable.
"""

# GATEWAY_* names that belong to the clients (settings.CLIENT_NAMES), with examples.
CLIENT_EXAMPLES = {"GATEWAY_URL": "http://localhost:9000", "GATEWAY_API_KEY": "sk-test-key-123"}
CLIENT_SECTION = "read by the clients (test_gateway.py, examples/), never by the gateway"


def field_docs(source: str) -> dict[str, tuple[str, str]]:
    """Field name → (docstring, section comment above it) of the ``Settings`` class."""
    tree = ast.parse(source)
    lines = source.splitlines()
    cls = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == Settings.__name__
    )
    docs: dict[str, tuple[str, str]] = {}
    section = ""
    body = cls.body
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        # A "# --- title ---" comment between the previous statement and this field.
        start = body[i - 1].end_lineno if i else cls.lineno
        for line in lines[start : node.lineno - 1]:
            found = re.match(r"\s*# -+ (.+?) -*$", line)
            if found:
                section = found.group(1)
        following = body[i + 1] if i + 1 < len(body) else None
        doc = ""
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            doc = following.value.value
        docs[node.target.id] = (doc, section)
    return docs


def one_line(doc: str) -> str:
    text = " ".join(doc.split())
    return text.replace("``", "`")


def default_of(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    raise ValueError(f"setting {field.name} has no default: document it by hand")


def render_value(value: Any) -> str:
    """The text that ``load_settings`` reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def choices(name: str) -> list[str]:
    """The allowed values of a ``Literal`` setting (empty for any other type)."""
    hint = typing.get_type_hints(Settings).get(name)
    if typing.get_origin(hint) is typing.Literal:
        return [str(a) for a in typing.get_args(hint)]
    return []


def section_line(title: str) -> str:
    return f"# --- {title} " + "-" * max(3, WIDTH - 7 - len(title)) + "\n"


def render() -> str:
    docs = field_docs(SETTINGS_SOURCE.read_text())
    missing = sorted(set(FIELDS) - set(docs))
    if missing:
        raise SystemExit(f"settings without a docstring: {', '.join(missing)}")
    out = [HEADER]
    section = None
    for name, field in FIELDS.items():
        doc, field_section = docs[name]
        if field_section != section:
            section = field_section
            out.append("\n" + section_line(section))
        explanation = one_line(doc)
        allowed = choices(name)
        if allowed:
            explanation += f" One of: {', '.join(allowed)}."
        out.append("\n")
        for line in textwrap.wrap(explanation, WIDTH - 2):
            out.append(f"# {line}\n")
        out.append(f"# {env_name(name)}={render_value(default_of(field))}\n")
    # The clients' names are GATEWAY_* too: listed so nobody mistakes them for settings.
    if set(CLIENT_EXAMPLES) != set(CLIENT_NAMES):
        raise SystemExit(f"CLIENT_EXAMPLES must name exactly {', '.join(CLIENT_NAMES)}")
    out.append("\n" + section_line(CLIENT_SECTION))
    out.extend(f"# {name}={value}\n" for name, value in CLIENT_EXAMPLES.items())
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    return generated_file.main(TARGET, render, script=__file__, doc=__doc__ or "", argv=argv)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes ``docs/api.md``, the API reference, from the gateway's own OpenAPI schema.

The app is built on the default settings (nothing starts: no model, no network), its
``/openapi.json`` is fetched in process, and every operation becomes a section: method,
path, summary, who may call it (read from the routes' guards: the schema does not say),
parameters, the request body's fields with their types and bounds, and the responses.
The schemas the operations use follow, field by field.

    python scripts/gen-api-docs.py            print it
    python scripts/gen-api-docs.py --write    write docs/api.md
    python scripts/gen-api-docs.py --check    exit 1 if docs/api.md differs
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

import generated_file  # noqa: E402
import httpx  # noqa: E402
from litestar import Litestar  # noqa: E402

from adapters.http.openapi import access_by_operation  # noqa: E402
from gateway.asgi import build  # noqa: E402
from gateway.settings import Settings  # noqa: E402

TARGET = ROOT / "docs" / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")
REF = "#/components/schemas/"

Schema = dict[str, Any]


async def fetch_schema(app: Litestar) -> Schema:
    """What ``GET /openapi.json`` answers (no lifespan: nothing is started; asked of
    the Litestar app inside the access log, which would print a line)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/openapi.json")
        response.raise_for_status()
        return dict(response.json())


def number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def code(value: Any) -> str:
    if isinstance(value, str):
        return f'`"{value}"`'
    if value is None:
        return "`null`"
    if isinstance(value, dict | list):
        return "`" + re.sub(r"\s+", " ", repr(value)).replace("'", '"') + "`"
    return f"`{number(value)}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def anchor(name: str) -> str:
    return name.lower()


def type_of(schema: Schema) -> str:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(REF)
        return f"[{name}](#{anchor(name)})"
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return " or ".join(type_of(s) for s in schema[combinator])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(type_of({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if kind:
        return str(kind) + (f" ({schema['format']})" if "format" in schema else "")
    return "any"


BOUNDS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "≥ {} characters"),
    ("maxLength", "≤ {} characters"),
    ("minItems", "≥ {} items"),
    ("maxItems", "≤ {} items"),
    ("pattern", "matches `{}`"),
)


def bounds(schema: Schema) -> list[str]:
    """Bounds of a field, on it or on the members of its ``oneOf``."""
    parts = [schema, *schema.get("oneOf", ()), *schema.get("anyOf", ())]
    found: list[str] = []
    for part in parts:
        for key, template in BOUNDS:
            if key in part:
                text = template.format(number(part[key]))
                if text not in found:
                    found.append(text)
        if "enum" in part:
            found.append("one of " + ", ".join(code(v) for v in part["enum"]))
    return found


def table(header: list[str], rows: list[list[str]]) -> Iterator[str]:
    """A Markdown table; the description column only when something fills it."""
    if header[-1] == "description" and not any(row[-1] for row in rows):
        header, rows = header[:-1], [row[:-1] for row in rows]
    yield "| " + " | ".join(header) + " |"
    yield "|" + "---|" * len(header)
    for row in rows:
        yield "| " + " | ".join(cell(c) for c in row) + " |"


def notes_of(field: Schema) -> str:
    notes = bounds(field)
    if "default" in field:
        notes.append(f"default {code(field['default'])}")
    return "; ".join(notes)


def field_rows(schema: Schema) -> Iterator[str]:
    required = set(schema.get("required", ()))
    rows = [
        [
            f"`{name}`", type_of(field), "yes" if name in required else "no",
            notes_of(field), field.get("description", ""),
        ]
        for name, field in schema.get("properties", {}).items()
    ]  # fmt: skip
    yield from table(["field", "type", "required", "bounds, default", "description"], rows)


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"].removeprefix(REF)
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def used_schemas(schema: Schema) -> list[str]:
    """Every component schema the operations reach, directly or through another."""
    components = schema.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    pending = list(references(schema["paths"]))
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += references(components.get(name, {}))
    return sorted(seen)


def operations(schema: Schema) -> Iterator[tuple[str, str, Schema]]:
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def heading(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def operation_anchor(method: str, path: str) -> str:
    # GitHub's slug of the heading: lowercase, spaces to dashes, punctuation dropped.
    return re.sub(r"[^a-z0-9 _-]", "", heading(method, path).lower()).replace(" ", "-")


def render_operation(
    method: str, path: str, op: Schema, access: str, components: dict[str, Schema]
) -> Iterator[str]:
    yield f"### {heading(method, path)}"
    yield ""
    yield f"**{cell(op.get('summary', ''))}**"
    yield ""
    if access == "none":
        yield "Auth: none."
    else:
        yield f"Auth: `Authorization: Bearer <key>`, tier **{access}** or above."
    if op.get("description"):
        yield ""
        yield op["description"]
    parameters = op.get("parameters", [])
    if parameters:
        yield ""
        yield "Parameters:"
        yield ""
        rows = [
            [
                f"`{p['name']}`", p["in"], type_of(p.get("schema", {})),
                "yes" if p.get("required") else "no", notes_of(p.get("schema", {})),
                p.get("description", ""),
            ]
            for p in parameters
        ]  # fmt: skip
        header = ["name", "in", "type", "required", "bounds, default", "description"]
        yield from table(header, rows)
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            body_schema = content.get("schema", {})
            yield ""
            yield f"Request body (`{media}`): {type_of(body_schema)}"
            if "$ref" in body_schema:
                yield ""
                yield from field_rows(components[body_schema["$ref"].removeprefix(REF)])
    yield ""
    yield "Responses:"
    yield ""
    rows = [
        [
            status,
            response.get("description", ""),
            ", ".join(
                f"{type_of(c.get('schema', {}))} (`{media}`)"
                for media, c in response.get("content", {}).items()
            ),
        ]
        for status, response in op.get("responses", {}).items()
    ]
    yield from table(["status", "meaning", "body"], rows)
    yield ""


def render(schema: Schema, access: dict[tuple[str, str], str]) -> str:
    components: dict[str, Schema] = schema.get("components", {}).get("schemas", {})
    info = schema["info"]
    out = [
        f"# {info['title']} API reference (version {info['version']})",
        "",
        "<!-- Generated from the OpenAPI schema by scripts/gen-api-docs.py: do not edit by",
        "hand (`python scripts/gen-api-docs.py --write`; a test fails when it is stale). -->",
        "",
        info.get("description", ""),
        "",
        "Every non-2xx answer has OpenAI's error body ([ErrorResponse](#errorresponse)). The",
        "live schema is served at `/openapi.json`, with Swagger UI at `/docs` and ReDoc at",
        "`/redoc`.",
        "",
        "## Operations",
        "",
        "| operation | summary | auth |",
        "|---|---|---|",
    ]
    ops = list(operations(schema))
    missing = [heading(m, p) for m, p, _ in ops if (m, p) not in access]
    if missing:
        raise SystemExit(f"no access rule found for: {', '.join(missing)}")
    for method, path, op in ops:
        link = f"[`{heading(method, path)}`](#{operation_anchor(method, path)})"
        out.append(f"| {link} | {cell(op.get('summary', ''))} | {access[method, path]} |")
    out.append("")
    tags: dict[str, list[tuple[str, str, Schema]]] = {}
    for method, path, op in ops:
        tags.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    for tag, tagged in tags.items():
        out += [f"## {tag[0].upper()}{tag[1:]}", ""]
        for method, path, op in tagged:
            out += render_operation(method, path, op, access[method, path], components)
    out += ["## Schemas", ""]
    for name in used_schemas(schema):
        component = components[name]
        out += [f"### {name}", ""]
        if component.get("description"):
            out += [component["description"], ""]
        if component.get("properties"):
            out += [*field_rows(component), ""]
        else:
            out += [f"{type_of(component)}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def generate() -> str:
    litestar: Litestar = build(Settings()).app  # type: ignore[attr-defined]
    return render(asyncio.run(fetch_schema(litestar)), access_by_operation(litestar))


def main(argv: list[str] | None = None) -> int:
    return generated_file.main(TARGET, generate, script=__file__, doc=__doc__ or "", argv=argv)


if __name__ == "__main__":
    sys.exit(main())

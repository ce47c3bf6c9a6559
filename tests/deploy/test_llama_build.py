"""The embedded model's build: portable CPU code chosen from what the kernel reports,
and a self-test that catches a build this machine cannot run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.scripts import SCRIPTS, load_script

ROOT = SCRIPTS.parent
CPUINFO = Path(__file__).parent / "cpuinfo"
flags = load_script("llama-build-flags.py")
selftest = load_script("llama-selftest.py")


def defines(machine: str, cpuinfo: str, **kwargs: bool) -> dict[str, str]:
    return dict(flags.definitions(machine, (CPUINFO / cpuinfo).read_text(), **kwargs))


def test_never_native_and_never_amx_or_avx512_even_where_cpuid_advertises_them() -> None:
    chosen = defines("x86_64", "xeon-amx.txt")
    assert chosen["GGML_NATIVE"] == "OFF"
    for option in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16", "GGML_AVX512"):
        assert chosen[option] == "OFF", option
    assert chosen["GGML_AVX2"] == chosen["GGML_FMA"] == chosen["GGML_F16C"] == "ON"


def test_a_cpu_without_a_feature_never_gets_code_that_uses_it() -> None:
    chosen = defines("x86_64", "atom-sse4.txt")
    assert chosen["GGML_SSE42"] == "ON"
    for option in ("GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2"):
        assert chosen[option] == "OFF", option


def test_baseline_turns_every_optional_x86_feature_off() -> None:
    chosen = defines("x86_64", "xeon-amx.txt", baseline=True)
    assert {v for k, v in chosen.items()} == {"OFF"}


def test_arm64_gets_the_extensions_the_kernel_reports_and_never_sve() -> None:
    chosen = defines("aarch64", "graviton.txt")
    assert chosen == {"GGML_NATIVE": "OFF", "GGML_CPU_ARM_ARCH": "armv8.2-a+dotprod+fp16+i8mm"}
    assert defines("aarch64", "graviton.txt", baseline=True)["GGML_CPU_ARM_ARCH"] == "armv8-a"


def test_the_command_prints_one_definition_a_line() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "llama-build-flags.py"), "--machine", "x86_64",
         "--cpuinfo", str(CPUINFO / "atom-sse4.txt")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "GGML_NATIVE=OFF" in out.splitlines()
    assert "GGML_AVX2=OFF" in out.splitlines()


def test_a_crashing_build_fails_the_self_test_naming_the_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        selftest, "CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    )
    assert selftest.main([]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err
    assert "SIGSEGV" in err
    assert "MAX_SERVE_URL" in err


@pytest.mark.llama
def test_the_installed_build_is_the_one_setup_chooses_and_it_generates() -> None:
    """What scripts/setup.sh built (recorded in .venv/llama-build) is what it chooses
    for this machine, and it passes the self-test: a real generation."""
    stamp = ROOT / ".venv" / "llama-build"
    if not stamp.exists() and not os.environ.get("CI"):
        pytest.skip("not set up by scripts/setup.sh (no .venv/llama-build)")
    chosen = subprocess.run(
        [sys.executable, str(SCRIPTS / "llama-build-flags.py")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert stamp.read_text().split() in (chosen.split(), _baseline())
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "llama-selftest.py"), "--json", "--tokens", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tokens"] > 0


def _baseline() -> list[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "llama-build-flags.py"), "--baseline"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


@pytest.mark.llama
def test_the_installed_cpu_code_uses_no_avx512_register_and_no_amx_instruction() -> None:
    """Disassembled: not one zmm register, tile configuration or tile multiply (what
    faulted with a general protection fault on a VM advertising AMX)."""
    import llama_cpp

    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils) is needed: it comes with the C compiler"
    libraries = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu.so*"))
    assert libraries, "llama_cpp ships no libggml-cpu"
    listing = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", str(libraries[0])],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "ymm" in listing or "xmm" in listing  # the disassembly is real
    forbidden = re.findall(r"\b(zmm\d+|ldtilecfg|tileloadd\w*|tdpb\w+)\b", listing)
    assert forbidden == [], sorted(set(forbidden))[:10]

#!/usr/bin/env python3
"""The CMake definitions llama.cpp is compiled with by ``scripts/setup.sh``: one per line,
as ``uv``'s ``--config-settings-package llama-cpp-python:cmake.define.NAME=VALUE``.

Never ``GGML_NATIVE``: ``-march=native`` compiles in every feature cpuid advertises,
including those the OS or hypervisor has not enabled (AMX tiles fault on ``ldtilecfg``
in many cloud VMs, AVX-512 without its register state), and a binary built for one CPU
dies with SIGILL on another (a copied venv, an image). Instead a portable build whose
x86 features are the ones the *kernel* reports in /proc/cpuinfo (Linux clears a flag
there when the OS does not support its state): the Haswell set (SSE4.2, AVX, AVX2, FMA,
F16C, BMI2) where present, each dropped where missing. AVX-512 and AMX are never used:
measured on SmolLM2-135M they do not pay for the risk. arm64 gets the armv8.0 baseline
(NEON), plus the dot-product extensions the kernel reports.

Standard library only: it runs before the virtualenv has anything in it.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

# ggml option -> the flag Linux prints in /proc/cpuinfo.
X86_FEATURES = {
    "GGML_SSE42": "sse4_2",
    "GGML_AVX": "avx",
    "GGML_AVX2": "avx2",
    "GGML_FMA": "fma",
    "GGML_F16C": "f16c",
    "GGML_BMI2": "bmi2",
}
NEVER = (
    "GGML_AVX_VNNI",
    "GGML_AVX512",
    "GGML_AVX512_VBMI",
    "GGML_AVX512_VNNI",
    "GGML_AVX512_BF16",
    "GGML_AMX_TILE",
    "GGML_AMX_INT8",
    "GGML_AMX_BF16",
)


def cpu_flags(cpuinfo: str) -> set[str]:
    """The features of the first processor listed (``flags`` on x86, ``Features`` on arm)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def arm_arch(flags: set[str]) -> str:
    """armv8.0 (NEON) always; the dot product, half-precision and int8 matrix extensions
    where the kernel reports them (asimddp, asimdhp, i8mm). SVE is left out."""
    if "asimddp" not in flags:
        return "armv8-a"
    arch = "armv8.2-a+dotprod"
    if "asimdhp" in flags:
        arch += "+fp16"
    if "i8mm" in flags:
        arch += "+i8mm"
    return arch


def definitions(machine: str, cpuinfo: str, *, baseline: bool = False) -> dict[str, str]:
    """``baseline``: no optional x86 feature at all (the fallback when a build fails its
    self-test)."""
    defines = {"GGML_NATIVE": "OFF"}
    arch = machine.lower()
    if arch in ("x86_64", "amd64", "i686", "i386"):
        flags = set() if baseline else cpu_flags(cpuinfo)
        for option, flag in X86_FEATURES.items():
            defines[option] = "ON" if flag in flags else "OFF"
        # FMA and F16C only exist beside AVX in ggml's code paths.
        if defines["GGML_AVX"] == "OFF":
            defines.update(GGML_AVX2="OFF", GGML_FMA="OFF", GGML_F16C="OFF")
        for option in NEVER:
            defines[option] = "OFF"
    elif arch in ("aarch64", "arm64"):
        defines["GGML_CPU_ARM_ARCH"] = arm_arch(set() if baseline else cpu_flags(cpuinfo))
    return defines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help="no optional CPU feature")
    parser.add_argument("--cpuinfo", type=Path, default=Path("/proc/cpuinfo"))
    parser.add_argument("--machine", default=platform.machine())
    args = parser.parse_args(argv)
    try:
        cpuinfo = args.cpuinfo.read_text(errors="replace")
    except OSError:
        cpuinfo = ""  # not Linux: features unknown, so none beyond the baseline
    for name, value in definitions(args.machine, cpuinfo, baseline=args.baseline).items():
        sys.stdout.write(f"{name}={value}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

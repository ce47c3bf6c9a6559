#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the whole suite: lint, layering,
# types, then unit, contract and end-to-end tests against real processes (the fake
# upstream, the llama.cpp server with the embedded model, the gateway itself).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every test starts Python processes (gateways, CLIs, the workers): each reads the
# bytecode the first one wrote (in .venv and the clone's __pycache__, both ignored by
# git) instead of compiling every module again, which an environment that forbids
# writing it would make each of them do.
unset PYTHONDONTWRITEBYTECODE
scripts/setup.sh --dev
# A real Modular MAX server (CPU) for the embedder contract suite, in its own venv.
scripts/setup-max.sh
# A private redis-server is started by the tests themselves, on a free port.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "test.sh: redis-server is needed (apt-get install redis-server)" >&2
    exit 1
  fi
fi
# A headless Chromium renders /docs and /redoc (driven by playwright, no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: chromium is needed (apt-get install chromium)" >&2
    exit 1
  fi
fi

echo "== lint, format, layering, types"; make --no-print-directory lint
# Two workers by default (TEST_WORKERS=0 runs in one process), a file to a worker: a
# module's gateway fixtures start once, in the worker that runs its tests.
echo "== tests";     .venv/bin/python -m pytest tests -n "${TEST_WORKERS:-2}" --dist loadfile "$@"

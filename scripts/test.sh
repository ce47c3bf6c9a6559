#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the whole suite: lint, layering,
# types, then unit, contract and end-to-end tests against real processes (the fake
# upstream, the llama.cpp server with the embedded model, the gateway itself).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev

echo "== lint";      .venv/bin/ruff check src tests bench
echo "== format";    .venv/bin/ruff format --check src tests bench
echo "== layering";  .venv/bin/lint-imports
echo "== types";     .venv/bin/mypy
echo "== tests";     .venv/bin/python -m pytest tests "$@"

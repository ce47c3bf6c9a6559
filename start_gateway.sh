#!/usr/bin/env bash
# Sets up (first run: a few minutes, llama.cpp compiles) and starts the gateway on the
# embedded defaults at http://localhost:9000. Arguments go to `gateway serve`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/gateway serve "$@"

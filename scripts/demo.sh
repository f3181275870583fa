#!/usr/bin/env bash
# The main job end to end on the embedded default store (runtime/async_jobs/store.v1.json).
# Sets up .venv if it is missing. Safe to run again: it adds to the same store.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"
unset ASYNCJOBS_STORE

step() { printf '\n$ %s\n' "$*"; "$@"; }

step asyncjobs store init
step asyncjobs store check
step asyncjobs store compact
step asyncjobs store check --json

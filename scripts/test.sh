#!/usr/bin/env bash
# Set up .venv (if missing) with asyncjobs and its test extra, then run the whole suite.
# Extra arguments go to pytest: scripts/test.sh -m "not slow" -x
# One tier (unit, contract, integration, system): scripts/test.sh tests/unit
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"

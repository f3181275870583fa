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
unset ASYNCJOBS_STORE ASYNCJOBS_ORG

step() { printf '\n$ %s\n' "$*"; "$@"; }

step asyncjobs store init

printf '\n# Two tenants submit jobs; an idempotency key makes a second submit a no-op.\n'
acme_job=$(asyncjobs submit reports.build --org acme --payload '{"month": "2026-10"}' --priority 7)
echo "acme job: $acme_job"
globex_job=$(asyncjobs submit invoices.send --org globex --payload '{"batch": 12}')
echo "globex job: $globex_job"
step asyncjobs submit reports.build --org acme --idempotency-key "nightly-$(date -u +%F)" --json
step asyncjobs submit reports.build --org acme --idempotency-key "nightly-$(date -u +%F)" --json
step asyncjobs status "$acme_job" --org acme
step asyncjobs jobs --org acme --limit 5

printf '\n# Another tenant asking for that job is answered exactly like a missing id (exit 3).\n'
printf '$ asyncjobs status %s --org globex\n' "$acme_job"
asyncjobs status "$acme_job" --org globex || echo "(exit $?)"

step asyncjobs cancel "$globex_job" --org globex
step asyncjobs events "$globex_job" --org globex
step asyncjobs retry "$globex_job" --org globex

step asyncjobs store compact
step asyncjobs store check

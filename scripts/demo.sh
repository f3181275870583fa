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
export PYTHONPATH="$PWD/examples${PYTHONPATH:+:$PYTHONPATH}"
export ASYNCJOBS_APP=demo_app:tasks
unset ASYNCJOBS_STORE ASYNCJOBS_ORG

step() { printf '\n$ %s\n' "$*"; "$@"; }
say() { printf '\n# %s\n' "$*"; }

step asyncjobs store init

say "Two tenants submit jobs; an idempotency key makes a second submit a no-op."
report=$(asyncjobs submit reports.build --org acme --payload '{"month": "2026-10"}' --priority 7)
invoices=$(asyncjobs submit invoices.send --org acme --payload '{"batch": 12}')
payments=$(asyncjobs submit payments.sync --org globex --payload '{"account": "ACME-42"}')
spare=$(asyncjobs submit reports.build --org globex --payload '{"month": "2026-09"}' --delay 3600)
echo "acme: $report (report), $invoices (invoices); globex: $payments (payments), $spare (delayed an hour)"
step asyncjobs submit reports.build --org acme --payload '{"month": "2026-11"}' --idempotency-key "nightly-$(date -u +%F)" --json
step asyncjobs submit reports.build --org acme --payload '{"month": "2026-11"}' --idempotency-key "nightly-$(date -u +%F)" --json

say "A worker drains what is runnable: one job fails once and is retried, one fails for good."
step asyncjobs worker --burst --concurrency 2 --log-level warning
step asyncjobs jobs --org acme --limit 5
step asyncjobs jobs --org globex --limit 5
step asyncjobs events "$invoices" --org acme
step asyncjobs status "$payments" --org globex

say "Another tenant asking for that job is answered exactly like a missing id (exit 3)."
printf '$ asyncjobs status %s --org globex\n' "$report"
asyncjobs status "$report" --org globex || echo "(exit $?)"

say "Cancel the delayed job, then queue it again as its second run."
step asyncjobs cancel "$spare" --org globex
step asyncjobs retry "$spare" --org globex

step asyncjobs workers
step asyncjobs store compact
step asyncjobs store check

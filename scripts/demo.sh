#!/usr/bin/env bash
# The main job end to end on the embedded default store (runtime/async_jobs/store.v1.json).
# Sets up .venv the first time (and again only when pyproject.toml changes).
# Safe to run again: it adds to the same store. Every command is printed as
# it can be pasted into a shell once the three exports below are made.
#
# scripts/demo.sh --postgres runs the same on PostgreSQL instead: it starts a
# throwaway server (the distribution's postgresql package, on a free port of
# 127.0.0.1), points ASYNCJOBS_STORE at it, and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
postgres=
case "${1:-}" in
  --postgres) postgres=1 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--postgres]" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extras=${postgres:+[postgres]}
if [ ! -f ".venv/.demo-installed$extras" ] || [ pyproject.toml -nt ".venv/.demo-installed$extras" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"
  touch ".venv/.demo-installed$extras"
fi
export PATH="$PWD/.venv/bin:$PATH"
export PYTHONPATH="$PWD/examples${PYTHONPATH:+:$PYTHONPATH}"
export ASYNCJOBS_APP=demo_app:tasks
unset ASYNCJOBS_STORE ASYNCJOBS_ORG
store_file=runtime/async_jobs/store.v1.json
if [ -n "$postgres" ]; then
  eval "$(.venv/bin/python scripts/pgserver.py start --durable)"
  trap '.venv/bin/python scripts/pgserver.py stop "$ASYNCJOBS_TEST_PG_FOLDER"' EXIT
  export ASYNCJOBS_STORE="$ASYNCJOBS_TEST_PG?schema=demo"
  store_file=$ASYNCJOBS_STORE
  printf '# A throwaway PostgreSQL server: ASYNCJOBS_STORE=%s\n' "$ASYNCJOBS_STORE"
fi

# A word as a shell reads it back: bare when it is plain, else in single quotes.
quoted() {
  local word out=()
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  printf '%s' "${out[*]}"
}
step() { printf '\n$ %s\n' "$(quoted "$@")"; "$@"; }
# capture NAME COMMAND...: run it, keep its output in $NAME, print both.
capture() {
  local name=$1
  shift
  printf '\n$ %s=$(%s)\n' "$name" "$(quoted "$@")"
  printf -v "$name" '%s' "$("$@")"
  printf '%s\n' "${!name}"
}
say() { printf '\n# %s\n' "$*"; }

say "Run this to use asyncjobs in your own shell afterwards:"
printf '$ export PATH="$PWD/.venv/bin:$PATH" PYTHONPATH="$PWD/examples" ASYNCJOBS_APP=demo_app:tasks\n'

step asyncjobs store init

say "Two tenants submit jobs; an idempotency key makes a second submit a no-op."
capture report asyncjobs submit reports.build --org acme --payload '{"month": "2026-10"}' --priority 7
capture invoices asyncjobs submit invoices.send --org acme --payload '{"batch": 12}'
capture payments asyncjobs submit payments.sync --org globex --payload '{"account": "ACME-42"}'
capture spare asyncjobs submit reports.build --org globex --payload '{"month": "2026-09"}' --delay 3600
step asyncjobs submit reports.build --org acme --payload '{"month": "2026-11"}' --idempotency-key "nightly-$(date -u +%F)" --json
step asyncjobs submit reports.build --org acme --payload '{"month": "2026-11"}' --idempotency-key "nightly-$(date -u +%F)" --json

say "A worker drains what is runnable: one job fails once and is retried, one fails for good."
say "Its log lines (stderr) say what it claimed, what failed and what it will retry."
step asyncjobs worker --burst --concurrency 2 --log-level info
step asyncjobs jobs --org acme --limit 5
step asyncjobs jobs --org globex --limit 5
step asyncjobs events "$invoices" --org acme
step asyncjobs status "$payments" --org globex

say "Another tenant asking for that job is answered exactly like a missing id (exit 3)."
printf '\n$ asyncjobs status %s --org globex\n' "$report"
asyncjobs status "$report" --org globex || echo "(exit $?)"

say "The report's result by permalink; a re-run makes a new version, which 'latest' follows."
capture first python3 -c 'import json, subprocess, sys; print(json.loads(subprocess.check_output(sys.argv[1:]))["result_id"])' asyncjobs status "$report" --org acme --json
step asyncjobs retry "$report" --org acme
step asyncjobs run "$report" --org acme
step asyncjobs result "$first" --org acme --json
step asyncjobs result "$first" --org acme --view pinned --json

say "One in-app notification per terminal transition, latest first."
step asyncjobs notifications "$report" --org acme
step asyncjobs inbox --org globex

say "A tenant mismatch on a permalink is answered like a missing one (exit 3)."
printf '\n$ asyncjobs result %s --org globex\n' "$first"
asyncjobs result "$first" --org globex || echo "(exit $?)"

say "Cancel the delayed job, then queue it again as its second run."
step asyncjobs cancel "$spare" --org globex
step asyncjobs retry "$spare" --org globex

say "Retention: a dry run writes the audit artifact and changes nothing."
capture tomorrow python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))'
step asyncjobs cleanup --results-ttl-seconds 3600 --events-ttl-seconds 3600 --now "$tomorrow" --dry-run --output-json artifacts/async/retention-dry-run.json
step python3 -c 'import json; d = json.load(open("artifacts/async/retention-dry-run.json")); print("dry run would delete", {k: d[k]["delete_count"] for k in ("results", "events", "notifications", "jobs")})'

say "The live cleanup from the cron script, then again: the second run deletes nothing."
for run in first second; do
  printf '\n$ scripts/run_async_retention_cleanup.py --store-file %s --results-ttl-seconds 3600 --events-ttl-seconds 3600 --now %s  # %s run\n' "$(quoted "$store_file")" "$tomorrow" "$run"
  scripts/run_async_retention_cleanup.py --store-file "$store_file" \
    --results-ttl-seconds 3600 --events-ttl-seconds 3600 --now "$tomorrow" \
    | python3 -c 'import json,sys; d = json.load(sys.stdin); print("deleted", {k: d[k]["delete_count"] for k in ("results", "events", "notifications", "jobs")})'
done

step asyncjobs info
step asyncjobs store check

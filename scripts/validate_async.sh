#!/usr/bin/env bash
# Check /health and /telemetry of a running asyncjobs HTTP API and print what was found.
# ASYNCJOBS_BASE_URL (default http://127.0.0.1:8080). Prints UNREACHABLE and exits 0
# when no server answers; exits 1 when a server answers but reports a problem.
set -euo pipefail
base=${ASYNCJOBS_BASE_URL:-http://127.0.0.1:8080}
python=python3
[ -x "$(dirname "$0")/../.venv/bin/python" ] && python="$(dirname "$0")/../.venv/bin/python"
exec "$python" - "$base" <<'PY'
import json
import sys
import urllib.error
import urllib.request

base = sys.argv[1].rstrip("/")


def get(path):
    try:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return None, None


status, health = get("/health")
if status is None:
    print(f"UNREACHABLE {base}")
    sys.exit(0)
print(f"health: HTTP {status} {json.dumps(health)}")
status_t, telemetry = get("/telemetry")
if status_t is None or telemetry is None:
    print(f"telemetry: HTTP {status_t} (no JSON document)")
    sys.exit(1)
section = telemetry.get("async", {})
requests = telemetry.get("requests", {})
print(f"telemetry: HTTP {status_t} degraded={telemetry.get('degraded')} "
      f"queue_depth={section.get('queue_depth')} running={section.get('running')} "
      f"worker_seen={section.get('worker_seen')} materializer_stale={section.get('materializer_stale')} "
      f"failed_1h={section.get('failed_1h')} requests_1h={requests.get('total_1h')} "
      f"error_rate_1h={requests.get('error_rate_1h')}")
problems = []
if status != 200 or (health or {}).get("status") != "ok":
    problems.append("health is not ok")
if telemetry.get("degraded"):
    problems.append("telemetry is degraded: " + json.dumps(telemetry.get("error")))
for problem in problems:
    print(f"PROBLEM {problem}")
print("OK" if not problems else "NOT OK")
sys.exit(1 if problems else 0)
PY

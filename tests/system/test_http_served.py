"""The HTTP API over loopback: a real `serve` process serves jobs and guards tenants,
and the validate script reads it (the routes in-process are in
tests/integration/test_http.py)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[2]


def fetch(url: str, *, org: str | None = None, data: bytes | None = None):
    request = urllib.request.Request(
        url, data=data, headers={"X-Org-Id": org} if org else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_real_server_on_loopback_serves_jobs_and_guards_tenants(server, client):
    status, created = fetch(
        f"{server}/analyze/jobs",
        org="acme",
        data=json.dumps({"task": "report"}).encode(),
    )
    assert status == 202
    status, job = fetch(f"{server}/analyze/jobs/{created['job_id']}", org="acme")
    assert status == 200 and job["status"] == "queued"
    assert fetch(f"{server}/analyze/jobs/{created['job_id']}", org="globex")[0] == 404
    assert fetch(f"{server}/health")[1]["status"] == "ok"
    script = subprocess.run(
        [str(ROOT / "scripts" / "validate_async.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "ASYNCJOBS_BASE_URL": server},
        timeout=60,
    )
    assert script.returncode == 0 and "health: HTTP 200" in script.stdout
    assert "OK" in script.stdout.splitlines()[-1]


def test_the_validate_script_says_unreachable_when_no_server_answers():
    script = subprocess.run(
        [str(ROOT / "scripts" / "validate_async.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "ASYNCJOBS_BASE_URL": "http://127.0.0.1:9"},
        timeout=60,
    )
    assert script.returncode == 0 and script.stdout.startswith("UNREACHABLE")

"""The HTTP API over loopback: a real `serve` process serves jobs and guards tenants,
and the validate script reads it (the routes in-process are in
tests/integration/test_http.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ..integration.test_http_auth import BODIES, ROUTES

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


def test_a_real_server_with_auth_tokens_takes_only_a_live_token_for_its_org(
    client, store_url
):
    _, token = client.create_token(orgs=["acme"], role="operator")
    _, viewer = client.create_token(orgs=["acme"], role="viewer")
    job = client.submit("report", org="acme")
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncjobs", "--store", store_url, "serve"]
        + ["--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "ASYNCJOBS_AUTH": "tokens"},
    )
    try:
        first = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first
        base = f"http://127.0.0.1:{match.group(1)}"

        def ask(path: str, bearer: str | None, org: str = "acme", method="GET"):
            headers = {"X-Org-Id": org}
            if bearer is not None:
                headers["Authorization"] = f"Bearer {bearer}"
            body = BODIES.get(path) if method == "POST" else None
            request = urllib.request.Request(
                f"{base}{path}", headers=headers, data=body, method=method
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                error.read()
                return error.code

        assert ask("/health", None) == 200
        assert ask("/analyze/jobs", None) == 401
        assert ask("/analyze/jobs", token + "x") == 401
        assert ask("/analyze/jobs", token) == 200
        assert ask("/analyze/jobs", token, org="globex") == 403
        assert ask("/metrics", token) == 200
        for method, path in ROUTES:  # every route, as the in-process matrix has it
            url = path.format(job=job.job_id)
            answered = ask(url, token, method=method)
            assert answered not in (401, 403) and answered < 500, (method, url)
            if method == "POST":
                assert ask(url, viewer, method=method) == 403, url
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        rest = proc.stderr.read()
        proc.stderr.close()
    # on loopback, no warning about serving without auth (it has auth anyway)
    assert "without --auth" not in first + rest


@pytest.mark.jsonfile
def test_the_no_auth_warning_is_for_every_address_but_loopback():
    from asyncjobs.cli.delivery_cmds import _loopback

    # The warning's rule; a test server never listens beyond loopback.
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("127.1.2.3")
    assert not _loopback("0.0.0.0") and not _loopback("::")
    assert not _loopback("192.168.1.10") and not _loopback("example.org")

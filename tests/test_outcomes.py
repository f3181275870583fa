"""Scripts learn how a job ended: exit 7 from `submit --sync` and `run`.

Exit 7: the job failed (or was canceled). The job, or its id, is still
printed on stdout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).parent / "apps"
APP = "jobsapp:tasks"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(tmp_path / "runs.log"),
        "ASYNCJOBS_FSYNC": "never",
    }


# -- submit --sync and run ------------------------------------------------------------


def test_submit_sync_exits_7_when_the_job_fails_and_still_prints_its_id(
    console, client, env
):
    failed = console("submit", "fail", "--org", "acme", "--sync", "-A", APP, env=env)
    assert failed.exit_code == 7
    job_id = failed.stdout.strip()
    assert client.get_job(job_id, org="acme").status == "failed"
    assert failed.stderr == (
        f"error: job {job_id} (fail) attempt 3/3 failed: ValueError: it broke; "
        "failed for good (no retries left)\n"
    )
    as_json = console(
        "submit", "fail", "--org", "acme", "--sync", "-A", APP, "--json", env=env
    )
    assert as_json.exit_code == 7
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "failed" and doc["error"]["type"] == "ValueError"
    done = console("submit", "echo", "--org", "acme", "--sync", "-A", APP, env=env)
    assert done.exit_code == 0 and done.stderr == ""


def test_fail_open_submit_exits_7_too(console, env):
    outcome = console(
        "submit",
        "fail",
        "--org",
        "acme",
        env={**env, "ASYNCJOBS_ASYNC_ENABLED": "0", "ASYNCJOBS_APP": APP},
    )
    assert outcome.exit_code == 7 and outcome.stdout.startswith("job_")


def test_run_exits_7_when_its_attempt_fails_even_with_a_retry_scheduled(
    cli, client, monkeypatch
):
    monkeypatch.syspath_prepend(str(APPS))
    job = client.submit("fail", org="acme")
    outcome = cli("run", job.job_id, "--org", "acme", "--app", APP)
    assert outcome.exit_code == 7
    assert outcome.stdout == f"{job.job_id} queued\n"
    queued = client.get_job(job.job_id, org="acme")
    assert outcome.stderr == (
        f"error: job {job.job_id} (fail) attempt 1/3 failed: ValueError: it broke; "
        f"retrying at {queued.run_after} (in 0 s)\n"
    )
    for attempt in (2, 3):
        again = cli("run", job.job_id, "--org", "acme", "--app", APP, "--json")
        assert again.exit_code == 7
        assert json.loads(again.stdout)["attempts"] == attempt
    assert "failed for good" in again.stderr
    ok = client.submit("echo", org="acme")
    assert cli("run", ok.job_id, "--org", "acme", "--app", APP).exit_code == 0

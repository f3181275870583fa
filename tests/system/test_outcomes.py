"""Scripts learn how a job ended: `wait`, and exit 7 from `submit --sync` and `run`.

Exit 7: the job failed (or was canceled); exit 8: timed out waiting. The
job, or its id, is still printed on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asyncjobs import InvalidInput, JobFailed, NotFound, WaitTimedOut

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
APP = "jobsapp:tasks"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(tmp_path / "runs.log"),
        "ASYNCJOBS_FSYNC": "never",
    }


def asyncjobs(store_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "asyncjobs", "--store", store_url, *args]


def start(store_url: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        asyncjobs(store_url, *args),
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def burst_worker(store_url: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        asyncjobs(store_url, "worker", "-A", APP, "--burst", "--log-level", "error"),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


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


# -- asyncjobs wait -------------------------------------------------------------------


def test_wait_exits_0_once_a_worker_in_another_process_completes_the_job(
    client, store_url, env
):
    job = client.submit("echo", org="acme")
    waiter = start(store_url, env, "wait", job.job_id, "--org", "acme")
    burst_worker(store_url, env)
    out, err = waiter.communicate(timeout=60)
    assert (waiter.returncode, out, err) == (0, f"{job.job_id} completed\n", "")


def test_wait_exits_7_with_the_job_on_stdout_when_it_failed(client, store_url, env):
    job = client.submit("fail", org="acme", payload={"message": "no"}, max_retries=0)
    waiter = start(store_url, env, "wait", job.job_id, "--org", "acme", "--json")
    burst_worker(store_url, env)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 7
    assert json.loads(out)["status"] == "failed"
    assert err == (
        f"error: job {job.job_id} (fail) attempt 1/1 failed: ValueError: no; "
        "failed for good (no retries left)\n"
    )


def test_wait_exits_7_for_a_canceled_job(client, console):
    job = client.submit("echo", org="acme")
    client.cancel(job.job_id, org="acme")
    outcome = console("wait", job.job_id, "--org", "acme")
    assert outcome.exit_code == 7 and outcome.stdout == f"{job.job_id} canceled\n"
    assert outcome.stderr == f"error: job {job.job_id} (echo) was canceled\n"


def test_wait_exits_8_when_the_time_is_up(client, console):
    job = client.submit("echo", org="acme")
    outcome = console("wait", job.job_id, "--org", "acme", "--timeout", "0.2")
    assert outcome.exit_code == 8 and outcome.stdout == ""
    assert outcome.stderr == f"error: job {job.job_id} is still queued after 0.2 s\n"


def test_wait_answers_another_orgs_job_and_a_missing_one_alike_at_once(client, console):
    job = client.submit("echo", org="acme")
    # no --timeout: an answer at all means it did not wait
    other = console("wait", job.job_id, "--org", "globex")
    missing = console("wait", "job_00000000000000000000", "--org", "acme")
    assert other.exit_code == missing.exit_code == 3
    assert other.stderr == f"error: job {job.job_id} not found\n"
    assert missing.stderr == "error: job job_00000000000000000000 not found\n"


def test_wait_refuses_a_timeout_outside_its_range(cli, client):
    job = client.submit("echo", org="acme")
    for bad in ("-1", "nan", "1e300"):
        outcome = cli("wait", job.job_id, "--org", "acme", "--timeout", bad)
        assert outcome.exit_code == 2 and "'--timeout'" in outcome.stderr


@pytest.mark.jsonfile  # counts the JSON file's lock calls
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_wait_looks_at_the_store_a_few_times_a_second_not_in_a_busy_loop(
    client, store_url, env, tmp_path
):
    """Each look is one read transaction, one flock and one unlock: count them."""
    job = client.submit("echo", org="acme")

    def flocks(*args: str) -> int:
        counts = tmp_path / "strace.txt"
        subprocess.run(
            ["strace", "-f", "-c", "-e", "trace=flock", "-o", str(counts)]
            + asyncjobs(store_url, *args),
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
        )
        # % time, seconds, usecs/call, calls, [errors,] syscall
        [calls] = [
            int(line.split()[3])
            for line in counts.read_text().splitlines()
            if line.split()[-1:] == ["flock"]
        ]
        return calls

    one_look = flocks("status", job.job_id, "--org", "acme")
    looks = flocks("wait", job.job_id, "--org", "acme", "--timeout", "2") / one_look
    # 10 ms doubling to 1 s, the last look at the deadline: 9 looks in 2 s
    # (a busy loop makes thousands)
    assert 2 <= looks <= 10


# -- Client.wait (its backoff: tests/unit/test_waiting.py) ----------------------------


def test_client_wait_returns_the_finished_job(client, monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))
    import jobsapp

    job = client.submit("echo", org="acme")
    client.run_job(job.job_id, org="acme", tasks=jobsapp.tasks)
    done = client.wait(job.job_id, org="acme", timeout=0)
    assert done.status == "completed" and done == client.get_job(job.job_id, org="acme")


def test_client_wait_raises_a_timeout_error_and_not_found(client):
    job = client.submit("echo", org="acme")
    with pytest.raises(WaitTimedOut) as timed_out:
        client.wait(job.job_id, org="acme", timeout=0.05, poll=0.01)
    assert isinstance(timed_out.value, TimeoutError)
    assert timed_out.value.exit_code == 8 and JobFailed.exit_code == 7
    assert str(timed_out.value) == f"job {job.job_id} is still queued after 0.05 s"
    with pytest.raises(NotFound):
        client.wait(job.job_id, org="globex")
    with pytest.raises(InvalidInput, match="poll"):
        client.wait(job.job_id, org="acme", poll=0)

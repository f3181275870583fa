"""What workers and the server say on stderr: failed attempts, rescued leases, JSON lines.

Real `asyncjobs worker` and `asyncjobs serve` processes; their stderr is read
after they stop (a burst worker, a worker with --max-jobs, a server sent
SIGTERM), so no line is waited for by the clock.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from asyncjobs import Client, logs

from ..injection import asyncjobs_cmd as asyncjobs
from ..injection import wait_for

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
APP = "jobsapp:tasks"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def burst(store_url, env):
    """Run `asyncjobs worker -A jobsapp:tasks --burst ARGS` to its end."""

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            asyncjobs(store_url, "worker", "-A", APP, "--burst", *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    return run


def started(runs_file: Path, job_id: str) -> int:
    if not runs_file.exists():
        return 0
    return sum(
        1
        for line in runs_file.read_text().splitlines()
        if line.startswith(f"{job_id} ") and line.split()[3] == "start"
    )


def warnings_about(stderr: str, job_id: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if " WARNING asyncjobs.worker: " in line and job_id in line
    ]


# -- failed attempts ----------------------------------------------------------------


def test_a_failed_attempt_is_one_warning_saying_when_the_committed_retry_runs(
    client, burst
):
    job = client.submit("fail_later", org="acme", payload={"message": "mail down"})
    proc = burst("-l", "warning")
    queued = client.get_job(job.job_id, org="acme")
    assert queued.status == "queued" and queued.attempts == 1  # the retry waits 30 s
    [line] = warnings_about(proc.stderr, job.job_id)
    assert line.endswith(
        f"{job.job_id} (fail_later) attempt 1/2 failed: ConnectionError: mail down; "
        f"retrying at {queued.run_after} (in 30 s)"
    )
    assert ISO_UTC.match(line)
    assert "Traceback" not in proc.stderr  # tracebacks are for -l debug


def test_retries_then_a_failure_for_good_each_say_so_with_their_attempt(client, burst):
    job = client.submit("fail", org="acme", payload={"message": "warehouse\ndown"})
    proc = burst("-l", "warning")
    lines = warnings_about(proc.stderr, job.job_id)
    assert len(lines) == 3, proc.stderr
    retries = [
        e
        for e in client.events(job.job_id, org="acme")
        if e.event_type == "async.job.retry_scheduled"
    ]
    for n, (line, event) in enumerate(zip(lines, retries), start=1):
        # retry_delay=0: the retry runs at the moment the failure committed
        assert line.endswith(
            f"attempt {n}/3 failed: ValueError: warehouse down; "
            f"retrying at {event.created_at} (in 0 s)"
        )
    assert lines[2].endswith(
        f"{job.job_id} (fail) attempt 3/3 failed: ValueError: warehouse down; "
        "failed for good (no retries left)"
    )
    assert client.get_job(job.job_id, org="acme").status == "failed"


def test_an_error_that_is_not_retried_fails_for_good_at_once(client, burst):
    job = client.submit("picky", org="acme", payload={"kind": "value"})
    proc = burst("-l", "warning")
    [line] = warnings_about(proc.stderr, job.job_id)
    assert line.endswith(
        "attempt 1/4 failed: ValueError: no; failed for good (not retried)"
    )


def test_the_traceback_of_a_failed_attempt_is_logged_at_debug(client, burst):
    job = client.submit("fail", org="acme", payload={"message": "boom"}, max_retries=0)
    lines = burst("-l", "debug").stderr.splitlines()
    at = next(
        i
        for i, line in enumerate(lines)
        if " DEBUG asyncjobs.worker: " in line
        and f"{job.job_id} (fail) traceback" in line
    )
    assert lines[at + 1] == "Traceback (most recent call last):"
    assert "ValueError: boom" in lines[at + 2 :]


def test_a_dead_workers_job_taken_back_is_a_warning_naming_the_worker_that_lost_it(
    client, store_url, env, runs_file
):
    job = client.submit("sleep", org="acme", payload={"seconds": 0.2}, max_retries=1)
    first = subprocess.Popen(
        asyncjobs(store_url, "worker", "-A", APP, "--lease-seconds", "1")
        + ["--poll-seconds", "0.05", "-l", "error"],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: started(runs_file, job.job_id) == 1, what="the first attempt")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    lost = client.get_job(job.job_id, org="acme")
    assert lost.status == "running"
    rescuer = subprocess.run(
        asyncjobs(store_url, "worker", "-A", APP, "--lease-seconds", "1")
        + ["--poll-seconds", "0.05", "--max-jobs", "1", "-l", "warning"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rescuer.returncode == 0, rescuer.stderr
    [line] = warnings_about(rescuer.stderr, job.job_id)
    assert line.endswith(
        f"{job.job_id} (sleep) rescued from worker {lost.worker_id}, whose lease ran "
        f"out at {lost.lease_expires_at}: attempt 1/2 counted as failed; queued again"
    )
    assert client.get_job(job.job_id, org="acme").status == "completed"


# -- JSON lines ---------------------------------------------------------------------


def json_lines(stderr: str) -> list[dict]:
    docs = [json.loads(line) for line in stderr.splitlines()]
    for doc in docs:
        assert {"time", "level", "logger", "message"} <= doc.keys(), doc
        assert ISO_UTC.fullmatch(doc["time"]), doc
        datetime.fromisoformat(doc["time"])
    return docs


def test_worker_json_logs_are_one_object_a_line_with_job_and_worker_ids(client, burst):
    failing = client.submit("fail", org="acme", payload={"message": "x"}, max_retries=0)
    chatty = client.submit("chatty", org="acme", payload={"words": "hello"})
    proc = burst("-l", "debug", "--log-format", "json")
    docs = json_lines(proc.stderr)
    worker_ids = {doc.get("worker_id") for doc in docs}
    assert len(worker_ids) == 1 and next(iter(worker_ids)).startswith("wrk_")
    [failed] = [
        d for d in docs if d["level"] == "warning" and "failed for good" in d["message"]
    ]
    assert failed["job_id"] == failing.job_id and failed["logger"] == "asyncjobs.worker"
    [traceback] = [d for d in docs if "exc" in d]
    assert traceback["level"] == "debug" and traceback["job_id"] == failing.job_id
    assert (
        traceback["exc"].startswith("Traceback") and "ValueError: x" in traceback["exc"]
    )
    [said] = [d for d in docs if d["logger"] == "asyncjobs.task.chatty"]
    assert said["job_id"] == chatty.job_id and said["level"] == "warning"
    assert said["message"].endswith("saying hello")


def test_a_fatal_error_under_json_logs_is_a_json_line_too(store_url, env):
    proc = subprocess.run(
        asyncjobs(store_url, "worker", "-A", "no_such_module:tasks", "--burst")
        + ["--log-format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    [doc] = json_lines(proc.stderr)
    assert doc["level"] == "error" and doc["exit_code"] == 2
    assert doc["message"].startswith("app: cannot import no_such_module")


def test_serve_json_logs_carry_the_request_id_of_each_answer(store_url, tmp_path):
    with Client(store_url) as made:
        made.init_store()
    err = tmp_path / "serve.err"
    with err.open("w") as sink:
        proc = subprocess.Popen(
            asyncjobs(store_url, "serve", "--port", "0", "-l", "info")
            + ["--log-format", "json"],
            stderr=sink,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        base = wait_for(
            lambda: re.search(r"http://127\.0\.0\.1:\d+", err.read_text()),
            what="the server's address",
        ).group(0)
        given = urllib.request.Request(
            f"{base}/health", headers={"X-Request-ID": "deploy-check.1"}
        )
        with urllib.request.urlopen(given, timeout=10) as answer:
            assert answer.headers["X-Request-ID"] == "deploy-check.1"
        missing = urllib.request.Request(
            f"{base}/analyze/jobs/job_00000000000000000000",
            headers={"X-Org-Id": "acme"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(missing, timeout=10)
        assigned = refused.value.headers["X-Request-ID"]
        refused.value.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    docs = json_lines(err.read_text())
    assert docs[0]["message"] == f"serving on {base}"
    access = [d for d in docs if d["logger"] == "asyncjobs.http"]
    assert [(d["request_id"], d["message"].split('"')[1]) for d in access] == [
        ("deploy-check.1", "GET /health HTTP/1.1"),
        (assigned, "GET /analyze/jobs/job_00000000000000000000 HTTP/1.1"),
    ]
    assert [d["message"].split('" ')[1].split()[0] for d in access] == ["200", "404"]


def test_serve_logs_nothing_per_request_by_default(store_url, tmp_path):
    with Client(store_url) as made:
        made.init_store()
    err = tmp_path / "serve.err"
    with err.open("w") as sink:
        proc = subprocess.Popen(
            asyncjobs(store_url, "serve", "--port", "0"),
            stderr=sink,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        base = wait_for(
            lambda: re.search(r"http://127\.0\.0\.1:\d+", err.read_text()),
            what="the server's address",
        ).group(0)
        with urllib.request.urlopen(f"{base}/health", timeout=10):
            pass
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    [line] = err.read_text().splitlines()
    assert ISO_UTC.match(line) and line.endswith(
        f" INFO asyncjobs.cli.delivery_cmds: serving on {base}"
    )


def test_an_exception_logged_in_a_request_is_in_the_exc_field_with_its_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("asyncjobs.test_worker_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.context(request_id="req-1"):
            try:
                raise KeyError("no route")
            except KeyError:
                logger.exception("unexpected error answering %s", "/x")
        logger.warning("after", extra={"job_id": "job_1"})
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "unexpected error answering /x"
    assert first["request_id"] == "req-1" and first["level"] == "error"
    assert (
        first["exc"].startswith("Traceback") and "KeyError: 'no route'" in first["exc"]
    )
    assert second == {
        "time": second["time"],
        "level": "warning",
        "logger": "asyncjobs.test_worker_logs",
        "message": "after",
        "job_id": "job_1",
    }

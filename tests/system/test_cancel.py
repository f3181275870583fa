"""Canceling a running job: real workers, a task canceled from another process.

The rule under test: a cancel request wins once it is committed; an outcome
committed before it wins. The worker learns of a request at its next
heartbeat, kills the task's process and reports the attempt canceled; a
lease that runs out, or a worker that stops, ends such a job canceled too.
Every wait polls the store or the process table with a generous deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.records import JobStatus
from asyncjobs.tasks import TaskRegistry

from ..conftest import exported
from ..injection import APPS, ROOT, wait_for, worker_process
from ..integration.test_claiming import make_worker
from .test_worker import events_of, runs, starts

pytestmark = pytest.mark.engines

DEADLINE = 30.0  # generous; every lease below that must not be the way out is longer


@pytest.fixture
def runs_file(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def env(runs_file: Path, artifacts: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(runs_file),
        "ASYNCJOBS_ARTIFACTS": str(artifacts),
        "ASYNCJOBS_FSYNC": "never",
    }


@pytest.fixture
def workers(store_url, env):
    """Start workers in their own process groups; every one is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = worker_process(store_url, env, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def asyncjobs(console, env):
    """Run an asyncjobs command as its own process, as a user would."""

    def run(*args: str):
        return console(*args, env=env)

    return run


def pid_of(runs_file: Path, job_id: str, attempt: int = 1) -> int:
    """The pid of the process that ran the job's attempt (the task wrote it)."""
    (pid,) = {r[2] for r in runs(runs_file) if r[0] == job_id and r[1] == attempt}
    return pid


def ended(runs_file: Path, job_id: str) -> bool:
    """Whether the task of the job returned or raised by itself (passed its gate)."""
    return any(r[0] == job_id and r[3] == "end" for r in runs(runs_file))


def gone(pid: int) -> bool:
    """The process no longer exists: killed and reaped, not a zombie."""
    return not Path(f"/proc/{pid}").exists()


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def pause_and_cancel(worker: subprocess.Popen, asyncjobs, job_id: str) -> None:
    """SIGSTOP the worker's group, then cancel; again if it stopped holding the lock."""
    for _ in range(20):
        os.killpg(worker.pid, signal.SIGSTOP)
        answer = asyncjobs("--lock-timeout", "1", "cancel", job_id, "--org", "acme")
        if answer.exit_code != 5:
            assert answer.exit_code == 0, answer.stderr
            return
        os.killpg(worker.pid, signal.SIGCONT)
    raise AssertionError("the worker was always paused holding the store lock")


def status_of(client: Client, job_id: str) -> str:
    return client.get_job(job_id, org="acme").status.value


def notifications_of(client: Client, job_id: str) -> list[str]:
    return [n.event_type for n in client.notifications(job_id, org="acme")]


def canceled_event(client: Client, job_id: str) -> dict:
    (event,) = [
        e
        for e in client.events(job_id, org="acme")
        if e.event_type.endswith("canceled")
    ]
    return event.data


# -- the worker stops it -----------------------------------------------------------


def test_cancel_kills_a_running_task_at_the_next_heartbeat_and_the_worker_goes_on(
    client, workers, asyncjobs, runs_file, tmp_path
):
    gate = tmp_path / "gate"
    job = client.submit("gated", org="acme", payload={"gate": str(gate)})
    other = client.submit("sleep", org="acme", payload={"seconds": 120}, priority=0)
    # A lease far longer than the deadline: the job can only end by the heartbeat.
    worker = workers("-c", "2", "--lease-seconds", "120", "--heartbeat-seconds", "0.5")
    wait_for(lambda: len(starts(runs_file)) == 2, what="both jobs to start")
    child, other_child = pid_of(runs_file, job.job_id), pid_of(runs_file, other.job_id)
    assert children_of(worker.pid) == {child, other_child}

    answer = asyncjobs("cancel", job.job_id, "--org", "acme")
    assert answer.exit_code == 0, answer.stderr
    assert answer.stdout == f"{job.job_id} running, cancel requested\n"

    wait_for(lambda: gone(child), timeout=DEADLINE, what="the task's process to die")
    wait_for(
        lambda: status_of(client, job.job_id) == "canceled",
        timeout=DEADLINE,
        what="the job to end canceled",
    )
    canceled = client.get_job(job.job_id, org="acme")
    assert not ended(runs_file, job.job_id)  # killed, not finished by itself
    assert canceled.attempts == 1 and canceled.cancel_requested_at is not None
    assert canceled.lease_expires_at is None and canceled.result_id is None
    assert events_of(client, job.job_id) == [
        "async.job.queued",
        "async.job.started",
        "async.job.cancel_requested",
        "async.job.canceled",
    ]
    assert canceled_event(client, job.job_id)["via"] == "worker"
    assert notifications_of(client, job.job_id) == ["async.job.canceled"]

    # The other task was left alone, and the killed child was replaced: a new
    # job runs while the other one still holds its child.
    assert not gone(other_child) and status_of(client, other.job_id) == "running"
    wait_for(lambda: len(children_of(worker.pid)) == 2, what="a replacement child")
    quick = client.submit("echo", org="acme")
    wait_for(
        lambda: status_of(client, quick.job_id) == "completed",
        timeout=DEADLINE,
        what="the next job to complete",
    )
    assert worker.poll() is None and status_of(client, other.job_id) == "running"
    assert starts(runs_file)[job.job_id] == 1  # canceled means never run again
    counters = client.stats()["counters"]
    assert counters["jobs_canceled_total"] == 1
    assert counters.get("attempts_failed_total", 0) == 0

    # retry works as for any canceled job: a new run.
    gate.touch()
    again = asyncjobs("retry", job.job_id, "--org", "acme")
    assert again.stdout == f"{job.job_id} queued (run 2)\n"
    wait_for(
        lambda: status_of(client, job.job_id) == "completed",
        timeout=DEADLINE,
        what="the second run to complete",
    )
    second = client.get_job(job.job_id, org="acme")
    assert second.run == 2 and second.attempts == 1
    assert second.cancel_requested_at is None
    assert notifications_of(client, job.job_id) == [
        "async.job.completed",
        "async.job.canceled",
    ]
    assert client.check().ok


def test_cancel_answers_at_once_and_asking_again_changes_nothing(client, cli):
    job = client.submit("t", org="acme")
    worker = make_worker(client)
    ((_, token),) = client.exchange(worker, [], want=1, registry=None)[1]
    first = cli("cancel", job.job_id, "--org", "acme", "--json")
    assert first.exit_code == 0
    shown = json.loads(first.stdout)
    assert shown["status"] == "running" and shown["cancel_requested_at"]
    again = cli("cancel", job.job_id, "--org", "acme", "--json")
    assert json.loads(again.stdout) == shown  # the first request stands
    assert events_of(client, job.job_id).count("async.job.cancel_requested") == 1
    assert client.heartbeat(worker, [token]).stop == [token]
    assert notifications_of(client, job.job_id) == []  # not over yet
    stopped = {"job_id": job.job_id, "ok": False, "canceled": True, "error": {}}
    finished, _ = client.exchange(worker, [(token, stopped)], want=0, registry=None)
    assert [j.status for j in finished] == [JobStatus.CANCELED]
    over = cli("cancel", job.job_id, "--org", "acme")
    assert over.exit_code == 4
    assert over.stderr == (
        f"error: job {job.job_id} is canceled; only a queued or running job "
        "can be canceled\n"
    )


# -- races: which outcome stands ----------------------------------------------------


@pytest.mark.parametrize("fail", [False, True], ids=["result", "error"])
def test_a_cancel_committed_first_wins_over_the_tasks_own_outcome(
    client, workers, asyncjobs, runs_file, tmp_path, artifacts, fail
):
    gate = tmp_path / "gate"
    # A large result: it would be written to a file before its commit.
    payload = {"gate": str(gate), "fail": fail, "size": 200_000}
    job = client.submit("gated", org="acme", payload=payload)
    # No heartbeat within the test: only the task's own outcome can end it.
    workers("--lease-seconds", "600", "--heartbeat-seconds", "200")
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the job to start")
    answer = asyncjobs("cancel", job.job_id, "--org", "acme")
    assert answer.stdout == f"{job.job_id} running, cancel requested\n"
    gate.touch()  # the task now returns (or raises) by itself
    wait_for(
        lambda: status_of(client, job.job_id) == "canceled",
        timeout=DEADLINE,
        what="the job to end canceled",
    )
    assert ended(runs_file, job.job_id)
    assert events_of(client, job.job_id) == [
        "async.job.queued",
        "async.job.started",
        "async.job.cancel_requested",
        "async.job.canceled",
    ]  # no completed, failed or retry_scheduled: the request won
    data = canceled_event(client, job.job_id)
    assert data["via"] == "worker" and data["discarded"] == (
        "error" if fail else "result"
    )
    canceled = client.get_job(job.job_id, org="acme")
    assert canceled.result_id is None and canceled.attempts == 1
    assert exported(client, "results", job_id=job.job_id) == []
    assert not [p for p in artifacts.rglob("*") if p.is_file()]  # its file deleted
    assert notifications_of(client, job.job_id) == ["async.job.canceled"]
    assert starts(runs_file)[job.job_id] == 1  # retries were left, none ran
    assert asyncjobs("cancel", job.job_id, "--org", "acme").exit_code == 4


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
def test_an_outcome_committed_before_the_cancel_stands(
    client, workers, asyncjobs, runs_file, tmp_path, fail
):
    gate = tmp_path / "gate"
    job = client.submit(
        "gated", org="acme", payload={"gate": str(gate), "fail": fail}, max_retries=0
    )
    workers("--lease-seconds", "600", "--heartbeat-seconds", "200")
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the job to start")
    gate.touch()
    final = "failed" if fail else "completed"
    wait_for(
        lambda: status_of(client, job.job_id) == final,
        timeout=DEADLINE,
        what=f"the job to end {final}",
    )
    before = client.get_job(job.job_id, org="acme")
    answer = asyncjobs("cancel", job.job_id, "--org", "acme")
    assert answer.exit_code == 4 and answer.stdout == ""
    assert answer.stderr == (
        f"error: job {job.job_id} is {final}; only a queued or running job "
        "can be canceled\n"
    )
    assert client.get_job(job.job_id, org="acme") == before  # nothing written
    assert "async.job.cancel_requested" not in events_of(client, job.job_id)
    assert notifications_of(client, job.job_id) == [f"async.job.{final}"]


# -- the worker is gone, paused or stopping -----------------------------------------


def test_a_dead_workers_job_with_a_cancel_request_ends_canceled_not_requeued(
    client, workers, asyncjobs, runs_file
):
    job = client.submit("sleep", org="acme", payload={"seconds": 120}, max_retries=3)
    first = workers("--lease-seconds", "1")
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the job to start")
    child = pid_of(runs_file, job.job_id)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    wait_for(lambda: gone(child), what="the task's process to die with its worker")
    answer = asyncjobs("cancel", job.job_id, "--org", "acme")
    assert answer.stdout == f"{job.job_id} running, cancel requested\n"
    workers("--lease-seconds", "1")  # rescues the lease once it has run out
    wait_for(
        lambda: status_of(client, job.job_id) == "canceled",
        timeout=DEADLINE,
        what="the rescued job to end canceled",
    )
    assert events_of(client, job.job_id) == [
        "async.job.queued",
        "async.job.started",
        "async.job.cancel_requested",
        "async.job.lease_expired",
        "async.job.canceled",
    ]
    assert canceled_event(client, job.job_id)["via"] == "lease_expired"
    assert notifications_of(client, job.job_id) == ["async.job.canceled"]
    after = client.submit("echo", org="acme")
    wait_for(
        lambda: status_of(client, after.job_id) == "completed",
        timeout=DEADLINE,
        what="the next job to complete",
    )
    assert starts(runs_file)[job.job_id] == 1  # three retries left, none used


def test_a_paused_workers_outcome_for_a_canceled_job_is_refused_and_its_task_killed(
    client, workers, asyncjobs, runs_file, tmp_path
):
    gate = tmp_path / "gate"
    job = client.submit("gated", org="acme", payload={"gate": str(gate)})
    paused = workers("--lease-seconds", "1")
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the job to start")
    child = pid_of(runs_file, job.job_id)
    pause_and_cancel(paused, asyncjobs, job.job_id)
    workers("--lease-seconds", "1")
    wait_for(
        lambda: status_of(client, job.job_id) == "canceled",
        timeout=DEADLINE,
        what="the other worker to end the job canceled",
    )
    os.killpg(paused.pid, signal.SIGCONT)

    def refused() -> list[dict]:
        return [
            e.data
            for e in client.events(job.job_id, org="acme")
            if e.event_type == "async.job.stale_outcome_refused"
            and e.data["refused"] == "outcome"
        ]

    wait_for(refused, timeout=DEADLINE, what="the paused worker's outcome")
    assert gone(child)  # its heartbeat named the canceled job: it killed the task
    assert not ended(runs_file, job.job_id)
    canceled = client.get_job(job.job_id, org="acme")
    assert canceled.status is JobStatus.CANCELED and canceled.attempts == 1
    assert notifications_of(client, job.job_id) == ["async.job.canceled"]
    assert refused()[0]["token_worker"] == canceled.worker_id
    assert paused.poll() is None  # the worker itself goes on
    assert starts(runs_file)[job.job_id] == 1
    assert client.check().ok


def test_a_stopping_worker_ends_a_job_with_a_cancel_request_canceled(
    client, workers, asyncjobs, runs_file
):
    job = client.submit("sleep", org="acme", payload={"seconds": 120}, max_retries=3)
    worker = workers(
        "--lease-seconds", "600", "--heartbeat-seconds", "200", "--grace", "0.5"
    )
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the job to start")
    child = pid_of(runs_file, job.job_id)
    asyncjobs("cancel", job.job_id, "--org", "acme")
    os.kill(worker.pid, signal.SIGTERM)  # before any heartbeat has seen the request
    assert worker.wait(timeout=DEADLINE) == 0
    assert gone(child)
    canceled = client.get_job(job.job_id, org="acme")
    assert canceled.status is JobStatus.CANCELED  # not queued for another worker
    assert canceled_event(client, job.job_id)["via"] == "worker_shutdown"
    assert notifications_of(client, job.job_id) == ["async.job.canceled"]


# -- breakers ---------------------------------------------------------------------

guarded = TaskRegistry()
guarded.breaker("dep", fail_max=2, reset_timeout=10.0)


@guarded.task(name="dep.call", breaker="dep", max_retries=0)
def dep_call() -> None: ...


def _claim(client: Client, worker) -> tuple:
    ((job, token),) = client.exchange(worker, [], want=1, registry=guarded)[1]
    return job, token


def _stop(client: Client, worker, token) -> None:
    stopped = {"job_id": token.job_id, "ok": False, "canceled": True, "error": {}}
    client.exchange(worker, [(token, stopped)], want=0, registry=guarded)


def _fail(client: Client, worker, token) -> None:
    error = {"type": "ConnectionError", "message": "down"}
    failed = {"job_id": token.job_id, "ok": False, "retryable": True, "error": error}
    client.exchange(worker, [(token, failed)], want=0, registry=guarded)


def test_a_canceled_attempt_is_no_failure_to_its_breaker(client):
    worker = make_worker(client)
    for _ in range(3):
        client.submit("dep.call", org="acme")
    _, token = _claim(client, worker)
    _fail(client, worker, token)
    job, token = _claim(client, worker)
    client.cancel(job.job_id, org="acme")
    _stop(client, worker, token)
    (breaker,) = client.breakers()
    assert (breaker["state"], breaker["failure_count"]) == ("closed", 1)
    job, _ = _claim(client, worker)  # still closed: the third job runs
    assert job.status is JobStatus.RUNNING


def test_a_canceled_trial_lets_the_next_job_be_the_trial(client, clock):
    worker = make_worker(client)
    for _ in range(4):
        client.submit("dep.call", org="acme")
    for _ in range(2):
        clock.advance(0.001)
        _, token = _claim(client, worker)
        _fail(client, worker, token)
    assert client.breakers()[0]["state"] == "open"
    clock.advance(11)
    trial, token = _claim(client, worker)
    assert client.breakers()[0]["trial_job_id"] == trial.job_id
    client.cancel(trial.job_id, org="acme")
    _stop(client, worker, token)
    (breaker,) = client.breakers()
    assert breaker["state"] == "open" and breaker["failure_count"] == 2
    assert breaker["reopens_at"] <= client.get_job(trial.job_id, org="acme").updated_at
    following, _ = _claim(client, worker)  # a trial is due at once
    assert following.job_id != trial.job_id
    assert client.breakers()[0]["state"] == "half_open"
    assert client.breakers()[0]["trial_job_id"] == following.job_id

"""Canceling a running job: the request, and the rules that end the job canceled.

The rule under test: a cancel request wins once it is committed; an outcome
committed before it wins.
"""

from __future__ import annotations

import json

from asyncjobs import Client
from asyncjobs.records import JobStatus
from asyncjobs.tasks import TaskRegistry

from .test_claiming import make_worker
from .test_worker import events_of


def notifications_of(client: Client, job_id: str) -> list[str]:
    return [n.event_type for n in client.notifications(job_id, org="acme")]


# -- the answer of cancel ----------------------------------------------------------


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

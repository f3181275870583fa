"""One tenant's input, or one outcome that cannot be stored, never stops a worker.

Payloads and results are refused past a fixed nesting depth, the same way
from the CLI, Python and HTTP; an outcome the store cannot take fails its
own job with the reason while the others commit; and the file of a large
result is written once per outcome, kept across commit retries and removed
when the outcome is never committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from asyncjobs import Client, InvalidInput
from asyncjobs.clock import FixedClock
from asyncjobs.domain.validation import MAX_JSON_DEPTH
from asyncjobs.records import WorkerInfo

from ..conftest import data_files, sha256_of
from ..injection import ENV, asyncjobs_cmd, helper_process

HELPERS = Path(__file__).parents[1] / "helpers"


def nested(depth: int) -> dict:
    """A JSON object nested ``depth`` levels deep (the object itself is level 1)."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def nested_text(depth: int) -> str:
    """The same as JSON text, written without recursion."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def burst(store_path: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        asyncjobs_cmd(store_path, "worker", "--app", "jobsapp:tasks", "--burst")
        + ["--poll-seconds", "0.05", "--log-level", "error"],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=timeout,
    )


# -- the nesting cap ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 970])
def test_a_payload_nested_past_the_cap_is_refused_alike_everywhere(
    store_path, cli, server, depth
):
    message = f"payload: nested deeper than {MAX_JSON_DEPTH} levels"
    Client(store_path).init_store()
    before = sha256_of(*data_files(store_path))
    payload = nested_text(depth)
    outcome = cli("submit", "keep", "--org", "acme", "--payload", payload)
    assert outcome.exit_code == 2 and outcome.stderr == f"error: {message}\n"
    with Client(store_path) as client, pytest.raises(InvalidInput) as raised:
        client.submit("keep", org="acme", payload=nested(depth))
    assert raised.value.message == message
    request = urllib.request.Request(
        f"{server}/analyze/jobs",
        data=f'{{"task": "keep", "payload": {payload}}}'.encode(),
        headers={"X-Org-Id": "acme", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 400
    assert json.loads(answer.value.read())["error"]["message"] == message
    answer.value.close()
    assert sha256_of(*data_files(store_path)) == before


def test_a_payload_at_the_cap_runs_and_its_result_reads_back(store_path):
    with Client(store_path) as client:
        job = client.submit("keep", org="acme", payload=nested(MAX_JSON_DEPTH))
    assert burst(store_path).returncode == 0
    with Client(store_path) as client:
        done = client.get_job(job.job_id, org="acme")
        assert done.status == "completed"
        assert client.get_result(done.result_id, org="acme")["value"] == nested(
            MAX_JSON_DEPTH
        )


def test_results_nested_past_the_cap_fail_their_jobs_and_the_worker_goes_on(
    store_path,
):
    """Depths around the interpreter's limit: some used to pass the task's process and
    kill the worker at commit, with every other outcome of that exchange."""
    with Client(store_path) as client:
        poison = [
            client.submit("nested_result", org="evil", payload={"depth": depth})
            for depth in range(900, 1000, 10)
        ]
        good = [client.submit("echo", org="acme") for _ in range(3)]
    worker = burst(store_path)
    assert worker.returncode == 0, worker.stderr
    with Client(store_path) as client:
        for job in poison:
            failed = client.get_job(job.job_id, org="evil")
            assert failed.status == "failed" and failed.attempts == 1  # not retried
            assert (
                failed.error["message"]
                == f"result: nested deeper than {MAX_JSON_DEPTH} levels"
            )
        for job in good:
            assert client.get_job(job.job_id, org="acme").status == "completed"
        assert client.check(strict=True).ok


# -- large results ------------------------------------------------------------------


def result_files(artifacts: Path) -> list[Path]:
    return sorted((artifacts / "results").rglob("*.json"))


def test_a_large_result_that_cannot_be_written_fails_its_job_alone(
    store_path, tmp_path
):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the artifacts folder would be")
    with Client(store_path) as client:
        large = client.submit("big", org="acme")
        small = [client.submit("echo", org="acme") for _ in range(3)]
    worker = burst(
        store_path,
        {
            "ASYNCJOBS_ARTIFACTS": str(blocked / "artifacts"),
            "ASYNCJOBS_RESULT_INLINE_BYTES": "100",
        },
        timeout=30,
    )
    assert worker.returncode == 0, worker.stderr
    with Client(store_path) as client:
        failed = client.get_job(large.job_id, org="acme")
        assert failed.status == "failed"
        assert failed.error["type"] == "ResultNotStored"
        assert str(blocked) in failed.error["message"]
        for job in small:
            assert client.get_job(job.job_id, org="acme").status == "completed"


def test_a_large_result_keeps_one_file_while_its_commit_is_retried(
    store_path, tmp_path
):
    artifacts = tmp_path / "artifacts"
    gate = tmp_path / "gate"
    with Client(store_path) as client:
        job = client.submit("big", org="acme", payload={"gate": str(gate)})
    env = {
        **ENV,
        "ASYNCJOBS_ARTIFACTS": str(artifacts),
        "ASYNCJOBS_RESULT_INLINE_BYTES": "100",
    }
    worker = subprocess.Popen(
        asyncjobs_cmd(store_path, "--lock-timeout", "0.1", "worker")
        + ["--app", "jobsapp:tasks", "--burst", "--poll-seconds", "0.05"]
        + ["--log-level", "debug"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Client(store_path) as client:
            while client.get_job(job.job_id, org="acme").status != "running":
                assert worker.poll() is None, worker.stderr.read()
        holder = helper_process(
            ENV, str(HELPERS / "hold_lock.py"), f"{store_path}.lock"
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            gate.touch()  # the task returns; its commit now waits for the lock
            retries = 0  # the outage is logged once; each try at debug level
            while retries < 2:
                line = worker.stderr.readline()
                assert line, "the worker stopped"
                retries += "store still unavailable" in line
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()
            holder.stderr.close()
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
        worker.wait()
        worker.stderr.close()
    with Client(store_path) as client:
        done = client.get_job(job.job_id, org="acme")
        assert done.status == "completed"
        result = client.get_result(done.result_id, org="acme")
        assert result["value"] == "x" * 1000
        kept = client.export()["results"][done.result_id]["value_file"]
    assert result_files(artifacts) == [Path(kept)]


def test_the_file_of_a_refused_stale_outcome_is_removed(
    store_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("ASYNCJOBS_RESULT_INLINE_BYTES", "100")
    clock = FixedClock("2026-11-01T12:00:00Z")
    artifacts = tmp_path / "artifacts"

    def worker(name: str) -> WorkerInfo:
        stamp = "2026-11-01T12:00:00.000000Z"
        return WorkerInfo(
            worker_id=f"wrk_{name}",
            host="here",
            pid=os.getpid(),
            queues=["default"],
            concurrency=1,
            started_at=stamp,
            last_seen_at=stamp,
            heartbeat_seconds=10.0,
            lease_seconds=30.0,
        )

    with Client(store_path, clock=clock, artifacts=artifacts) as client:
        job = client.submit("big", org="acme", max_retries=2)
        _, [(_, token)] = client.exchange(worker("a"), [], want=1, registry=None)
        clock.advance(31)
        _, [(_, other)] = client.exchange(worker("b"), [], want=1, registry=None)
        assert other.attempt > token.attempt  # the lease ran out and was taken
        outcome = {"job_id": job.job_id, "ok": True, "value": "x" * 1000}
        finished, _ = client.exchange(
            worker("a"), [(token, outcome)], want=0, registry=None
        )
        assert finished == [] and client.get_job(job.job_id, org="acme").status == (
            "running"
        )
    assert result_files(artifacts) == []

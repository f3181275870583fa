"""Workers as real processes: running, retries, limits, crashes, leases, shutdown, breakers, beat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from asyncjobs import Client, clock

from ..conftest import exported
from ..injection import wait_for

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
APP = "jobsapp:tasks"


def worker_cmd(store_url: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asyncjobs",
        "--store",
        store_url,
        "worker",
        "--app",
        APP,
        "--log-level",
        "warning",
        *args,
    ]


@pytest.fixture
def burst(store_url, env):
    """Run a burst worker to completion (it exits when nothing is runnable)."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            worker_cmd(store_url, "--burst", *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    return run


@pytest.fixture
def background(store_url, spawn):
    """Start workers in their own process groups; every one is killed at the end."""
    return lambda *args: spawn(worker_cmd(store_url, *args))


def runs(runs_file: Path) -> list[tuple[str, int, int, str, float]]:
    if not runs_file.exists():
        return []
    out = []
    for line in runs_file.read_text().splitlines():
        job_id, attempt, pid, what, at = line.split()
        out.append((job_id, int(attempt), int(pid), what, float(at)))
    return out


def starts(runs_file: Path) -> Counter:
    return Counter(r[0] for r in runs(runs_file) if r[3] == "start")


def events_of(client: Client, job_id: str, org: str = "acme") -> list[str]:
    return [e.event_type for e in client.events(job_id, org=org)]


# -- running and retrying ---------------------------------------------------------------


def test_a_worker_runs_jobs_and_stores_their_results(client, burst, store_url):
    job = client.submit("echo", org="acme", payload={"month": "2026-10"})
    proc = burst()
    assert proc.returncode == 0
    done = client.get_job(job.job_id, org="acme")
    assert done.status == "completed" and done.attempts == 1 and done.result_id
    assert events_of(client, job.job_id) == [
        "async.job.queued",
        "async.job.started",
        "async.job.completed",
    ]
    result = client.export()["results"][done.result_id]
    notes = exported(client, "notifications", job_id=job.job_id)
    assert result["value"] == {"echo": {"month": "2026-10"}, "attempt": 1}
    assert [n["event_type"] for n in notes] == ["async.job.completed"]
    assert client.check().ok


def test_a_failing_job_is_retried_then_failed_with_its_last_error(
    client, burst, runs_file
):
    job = client.submit("fail", org="acme", payload={"message": "warehouse down"})
    burst()
    failed = client.get_job(job.job_id, org="acme")
    assert failed.status == "failed" and failed.attempts == 3  # max_retries=2
    assert (
        failed.error["type"] == "ValueError"
        and failed.error["message"] == "warehouse down"
    )
    assert "Traceback" in failed.error["traceback"]
    assert events_of(client, job.job_id).count("async.job.retry_scheduled") == 2
    assert starts(runs_file)[job.job_id] == 3


def test_a_flaky_job_succeeds_on_a_later_attempt(client, burst):
    job = client.submit("flaky", org="acme", payload={"succeed_on": 3})
    burst()
    done = client.get_job(job.job_id, org="acme")
    assert done.status == "completed" and done.attempts == 3


def test_retry_on_limits_which_errors_are_retried(client, burst):
    retried = client.submit("picky", org="acme", payload={"kind": "conn"})
    not_retried = client.submit("picky", org="acme", payload={"kind": "value"})
    burst()
    assert client.get_job(retried.job_id, org="acme").attempts == 4
    assert client.get_job(not_retried.job_id, org="acme").attempts == 1


def test_an_unknown_task_or_a_non_json_result_fails_the_job_not_the_worker(
    client, burst
):
    unknown = client.submit("no.such.task", org="acme")
    bad = client.submit("not_json", org="acme")
    huge = client.submit("not_json", org="acme", payload={"huge": True})
    fine = client.submit("echo", org="acme")
    assert burst().returncode == 0
    failed = client.get_job(unknown.job_id, org="acme")
    assert failed.status == "failed" and failed.error["type"] == "UnknownTask"
    assert "no.such.task" in failed.error["message"] and failed.attempts == 1
    assert client.get_job(bad.job_id, org="acme").error["type"] == "TypeError"
    assert client.get_job(bad.job_id, org="acme").attempts == 1  # not retried
    huge = client.get_job(huge.job_id, org="acme")
    assert huge.status == "failed" and huge.attempts == 1
    assert "does not fit in 64 bits" in huge.error["message"]
    assert client.get_job(fine.job_id, org="acme").status == "completed"


# -- time limits and dying children -----------------------------------------------------


def test_the_soft_limit_raises_inside_the_task_which_may_clean_up(
    client, burst, tmp_path
):
    marker = tmp_path / "soft"
    job = client.submit("limited", org="acme", payload={"marker": str(marker)})
    burst()
    done = client.get_job(job.job_id, org="acme")
    assert marker.read_text() == "soft limit seen"
    assert done.status == "completed"


def test_the_hard_limit_kills_the_task_and_the_worker_goes_on(client, burst, tmp_path):
    marker = tmp_path / "soft"
    job = client.submit(
        "limited", org="acme", payload={"marker": str(marker), "clean_up": False}
    )
    after = client.submit("echo", org="acme", priority=0)
    burst()
    failed = client.get_job(job.job_id, org="acme")
    assert marker.exists()  # it was warned first
    assert failed.status == "failed" and failed.error["type"] == "TimeLimitExceeded"
    assert client.get_job(after.job_id, org="acme").status == "completed"


@pytest.mark.parametrize(
    "task, how",
    [("exit", "exited with code 3"), ("segfault", "killed by signal 11 (SIGSEGV)")],
)
def test_a_child_that_dies_fails_its_attempt_and_the_worker_goes_on(
    client, burst, task, how
):
    dead = client.submit(task, org="acme")
    others = [client.submit("echo", org="acme", priority=0) for _ in range(3)]
    assert burst("-c", "2").returncode == 0
    failed = client.get_job(dead.job_id, org="acme")
    assert failed.status == "failed" and failed.error["type"] == "ChildProcessDied"
    assert how in failed.error["message"]
    assert all(
        client.get_job(j.job_id, org="acme").status == "completed" for j in others
    )


# -- leases -------------------------------------------------------------------------------


def test_a_job_whose_worker_was_killed_is_finished_by_another_after_the_lease(
    client, background, runs_file
):
    job = client.submit("sleep", org="acme", payload={"seconds": 1.5}, max_retries=1)
    first = background("--lease-seconds", "1", "--poll-seconds", "0.1")
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the first attempt")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert client.get_job(job.job_id, org="acme").status == "running"
    second = background(
        "--lease-seconds", "1", "--poll-seconds", "0.1", "--max-jobs", "1"
    )
    assert second.wait(timeout=30) == 0
    done = client.get_job(job.job_id, org="acme")
    assert done.status == "completed" and done.attempts == 2
    assert events_of(client, job.job_id).count("async.job.lease_expired") == 1
    assert starts(runs_file)[job.job_id] == 2
    assert len(exported(client, "results", job_id=job.job_id)) == 1
    assert len(exported(client, "notifications", job_id=job.job_id)) == 1


def test_a_burst_worker_waits_to_rescue_a_dead_workers_job_then_finishes_it(
    client, background, burst, runs_file
):
    job = client.submit("sleep", org="acme", payload={"seconds": 5}, max_retries=1)
    first = background("--lease-seconds", "1", "--poll-seconds", "0.1")
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the first attempt")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    lease_end = client.get_job(job.job_id, org="acme").lease_expires_at
    wait_for(lambda: clock.to_iso(clock.now()) > lease_end, what="the lease's end")
    # Nothing is runnable, but the dead worker's lease looks over: a new
    # worker confirms it for one lease period, and the burst waits for that.
    proc = burst("--lease-seconds", "1", "--poll-seconds", "0.1", timeout=30)
    assert proc.returncode == 0
    done = client.get_job(job.job_id, org="acme")
    assert done.status == "completed" and done.attempts == 2


def test_a_job_that_kills_its_worker_every_time_ends_failed_not_in_a_loop(
    client, background, runs_file
):
    poison = client.submit("kill_worker", org="acme")  # max_retries=1: two attempts
    for attempt in (1, 2):
        proc = background("--lease-seconds", "0.6", "--poll-seconds", "0.1")
        wait_for(
            lambda: starts(runs_file)[poison.job_id] == attempt,
            what=f"attempt {attempt}",
        )
        proc.wait(timeout=10)
    # A third worker finds the lease expired with no retries left.
    last = background("--lease-seconds", "0.6", "--poll-seconds", "0.1")
    wait_for(
        lambda: client.get_job(poison.job_id, org="acme").status == "failed",
        what="the poison job to fail",
    )
    os.kill(last.pid, signal.SIGTERM)
    assert last.wait(timeout=10) == 0
    failed = client.get_job(poison.job_id, org="acme")
    assert failed.error["type"] == "LeaseExpired" and failed.attempts == 2
    assert starts(runs_file)[poison.job_id] == 2


def test_two_workers_never_run_one_job_twice(client, store_url, env, runs_file):
    jobs = client.submit_many(
        [
            {"task": "echo", "org": f"org{i % 3}", "payload": {"i": i}}
            for i in range(200)
        ]
    )
    procs = [
        subprocess.Popen(
            worker_cmd(store_url, "--burst", "-c", "2"),
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    counts = starts(runs_file)
    assert len(counts) == 200 and set(counts.values()) == {1}
    assert {client.get_job(j.job_id, org=j.org_id).status for j in jobs} == {
        "completed"
    }
    pids = {r[2] for r in runs(runs_file)}
    assert len(pids) >= 2  # the work really was shared
    assert not exported(client, "events", event_type="async.job.lease_expired")


def test_heartbeats_may_not_be_rarer_than_a_third_of_the_lease(burst):
    proc = burst("--lease-seconds", "3", "--heartbeat-seconds", "1.5")
    assert proc.returncode == 2 and "at most a third of the lease" in proc.stderr


def test_jobs_claimed_ahead_are_given_back_when_a_long_job_takes_the_slot(
    client, background, runs_file, tmp_path
):
    """While jobs are short a worker claims a few ahead; once a long one holds its
    only slot it gives them back at once, and another worker runs them."""
    warm = client.submit_many([{"task": "echo", "org": "acme"} for _ in range(20)])
    background("-c", "1", "--poll-seconds", "0.05")

    def done(jobs):
        return all(
            client.get_job(j.job_id, org="acme").status == "completed" for j in jobs
        )

    wait_for(lambda: done(warm), what="the short jobs to complete")
    gate = tmp_path / "gate"
    gated, *shorts = client.submit_many(
        [{"task": "gated", "org": "acme", "payload": {"gate": str(gate)}}]
        + [{"task": "echo", "org": "acme", "payload": {"i": i}} for i in range(5)]
    )
    wait_for(lambda: starts(runs_file)[gated.job_id] == 1, what="the long job")
    background("-c", "1", "--poll-seconds", "0.05", "--prefetch", "0")
    wait_for(lambda: done(shorts), what="the jobs claimed ahead to run elsewhere")
    assert client.get_job(gated.job_id, org="acme").status == "running"
    given_back = [
        e
        for job in shorts
        for e in client.events(job.job_id, org="acme")
        if e.data.get("reason") == "not_started"
    ]
    assert given_back, "the first worker claimed none ahead"
    assert {client.get_job(j.job_id, org="acme").attempts for j in shorts} == {1}
    gate.touch()
    wait_for(lambda: done([gated]), what="the long job to finish")
    assert set(starts(runs_file).values()) == {1}


def test_prefetch_takes_a_whole_number_within_its_range(burst):
    proc = burst("--prefetch", "-1")
    assert proc.returncode == 2
    assert "--prefetch" in proc.stderr and "Traceback" not in proc.stderr


# -- shutdown -------------------------------------------------------------------------


def test_sigterm_lets_short_jobs_finish_and_releases_long_ones_at_once(
    client, background, runs_file
):
    short = [
        client.submit("sleep", org="acme", payload={"seconds": 0.5}) for _ in range(2)
    ]
    long = client.submit("sleep", org="acme", payload={"seconds": 30}, priority=0)
    proc = background("-c", "3", "--grace", "1.5")
    wait_for(lambda: len(starts(runs_file)) == 3, what="all three jobs to start")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert all(
        client.get_job(j.job_id, org="acme").status == "completed" for j in short
    )
    released = client.get_job(long.job_id, org="acme")
    assert released.status == "queued" and released.attempts == 0
    assert released.lease_expires_at is None and released.worker_id is None
    assert events_of(client, long.job_id)[-1] == "async.job.queued"
    assert Counter(starts(runs_file).values()) == {1: 3}
    worker = client.workers()[0]
    assert worker["state"] == "stopped" and worker["gone"]


def test_a_second_signal_stops_at_once(client, background, runs_file):
    job = client.submit("sleep", org="acme", payload={"seconds": 30})
    proc = background("--grace", "60", "--log-level", "info")  # a stop is news
    wait_for(lambda: starts(runs_file)[job.job_id] == 1, what="the job to start")
    os.kill(proc.pid, signal.SIGTERM)
    # Signals of one kind do not queue: send the second once the first was seen.
    wait_for(
        lambda: "stopping" in proc.stderr.readline(),
        what="the worker to begin stopping",
    )
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert client.get_job(job.job_id, org="acme").status == "queued"


# -- circuit breakers ---------------------------------------------------------------------


def test_a_breaker_opens_holds_jobs_then_lets_one_trial_through_and_closes(
    client, burst, cli, tmp_path, runs_file
):
    flag = tmp_path / "down"
    flag.touch()
    jobs = [
        client.submit("dep.call", org="acme", payload={"flag": str(flag)})
        for _ in range(5)
    ]
    burst()
    statuses = {j.job_id: client.get_job(j.job_id, org="acme").status for j in jobs}
    assert Counter(statuses.values()) == {
        "failed": 2,
        "queued": 3,
    }  # then held, not failed
    failed_first = {job_id for job_id, status in statuses.items() if status == "failed"}
    shown = json.loads(cli("breakers", "--json").stdout)["breakers"]
    assert [(b["name"], b["state"], b["failure_count"]) for b in shown] == [
        ("dep", "open", 2)
    ]
    assert burst().returncode == 0  # still open: nothing is claimed
    assert (
        Counter(client.get_job(j.job_id, org="acme").status for j in jobs)["queued"]
        == 3
    )
    flag.unlink()
    reopens = shown[0]["reopens_at"]
    wait_for(
        lambda: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) > reopens[:19],
        what="the breaker's reset timeout",
    )
    burst("-c", "2")
    assert all(client.get_job(j.job_id, org="acme").status != "queued" for j in jobs)
    ran = [r for r in runs(runs_file) if r[3] in ("start", "end")]
    trial = [r for r in ran if r[0] not in failed_first]
    assert trial[0][3] == "start" and trial[1][3] == "end"  # the trial ran alone
    assert trial[0][0] == trial[1][0]
    kinds = [
        e["event_type"]
        for e in client.export()["events"].values()
        if e["event_type"].startswith("async.breaker")
    ]
    assert Counter(kinds) == {
        "async.breaker.opened": 1,
        "async.breaker.half_opened": 1,
        "async.breaker.closed": 1,
    }
    assert (
        json.loads(cli("breakers", "--json").stdout)["breakers"][0]["state"] == "closed"
    )


def test_a_breaker_can_be_reset_by_hand(client, burst, cli, tmp_path):
    flag = tmp_path / "down"
    flag.touch()
    for _ in range(3):
        client.submit("dep.call", org="acme", payload={"flag": str(flag)})
    burst()
    assert "open" in cli("breakers").stdout
    assert cli("breakers", "reset", "dep").stdout == "dep closed\n"
    assert (
        json.loads(cli("breakers", "--json").stdout)["breakers"][0]["state"] == "closed"
    )
    missing = cli("breakers", "reset", "nope")
    assert missing.exit_code == 3 and "breaker nope not found" in missing.stderr
    assert client.check().ok


# -- periodic tasks ---------------------------------------------------------------------


def test_two_beat_workers_enqueue_each_slot_once(client, background):
    procs = [background("--beat", "--poll-seconds", "0.1") for _ in range(2)]

    def ticks():
        return [j for j in client.list_jobs(org="ops", limit=1000) if j.task == "tick"]

    wait_for(lambda: len(ticks()) >= 3, what="three periodic runs")
    for proc in procs:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    found = ticks()
    keys = Counter(j.idempotency_key for j in found)
    assert set(keys.values()) == {1} and all(
        k.startswith("periodic:tick:") for k in keys
    )
    slots = sorted(keys)
    assert len(slots) == len(found) >= 3


def test_schedules_show_the_slot_a_beat_worker_enqueued(
    client, store_url, env, console
):
    # --max-jobs 1: the beat enqueues tick's slot, the worker runs it and exits
    proc = subprocess.run(
        worker_cmd(store_url, "--beat", "--max-jobs", "1", "--poll-seconds", "0.1"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (job,) = [j for j in client.list_jobs(org="ops", limit=10) if j.task == "tick"]
    slot = job.idempotency_key.removeprefix("periodic:tick:")
    shown = console("schedules", "--app", APP, "--json", env=env)
    assert shown.exit_code == 0, shown.stderr
    (row,) = json.loads(shown.stdout)["schedules"]
    assert row["name"] == "tick" and row["every"] == 1 and row["cron"] is None
    assert (row["queue"], row["priority"], row["org"]) == ("default", 5, "ops")
    assert row["last_slot_at"] == slot
    assert row["next_run_at"] > slot
    text = console("schedules", "-A", APP, env=env).stdout.splitlines()
    assert text[0].split() == [
        "NAME",
        "SCHEDULE",
        "QUEUE",
        "PRIORITY",
        "ORG",
        "LAST_SLOT_AT",
        "NEXT_RUN_AT",
    ]
    assert text[1].split()[:7] == ["tick", "every", "1s", "default", "5", "ops", slot]
    # Without the app: the task catalog the beat worker published at start.
    bare = console("schedules", "--json", env={**env, "ASYNCJOBS_APP": ""})
    assert [r["name"] for r in json.loads(bare.stdout)["schedules"]] == ["tick"]
    assert json.loads(bare.stdout)["schedules"][0]["last_slot_at"] == slot


# -- fail-open and run -------------------------------------------------------------------


def test_fail_open_runs_the_job_inline_with_the_same_records(
    cli, env, store_url, console
):
    outcome = console(
        "submit",
        "echo",
        "--org",
        "acme",
        "--payload",
        '{"x": 1}',
        "--json",
        env={**env, "ASYNCJOBS_ASYNC_ENABLED": "0", "ASYNCJOBS_APP": APP},
    )
    assert outcome.exit_code == 0, outcome.stderr
    doc = json.loads(outcome.stdout)
    assert doc["status"] == "completed" and doc["result_id"]
    events = json.loads(cli("events", doc["job_id"], "--org", "acme", "--json").stdout)[
        "events"
    ]
    assert [e["event_type"] for e in events] == [
        "async.job.queued",
        "async.job.started",
        "async.job.completed",
    ]
    assert cli("store", "check").exit_code == 0
    missing_app = cli("submit", "echo", "--org", "acme", "--sync")
    assert missing_app.exit_code == 2 and "--app" in missing_app.stderr


def test_sync_submit_from_python_runs_retries_at_once(client, monkeypatch, runs_file):
    monkeypatch.syspath_prepend(str(APPS))
    monkeypatch.setenv("ASYNCJOBS_TEST_RUNS", str(runs_file))
    import jobsapp

    job = client.submit(
        "flaky", org="acme", payload={"succeed_on": 2}, sync=True, tasks=jobsapp.tasks
    )
    assert job.status == "completed" and job.attempts == 2
    failed = client.submit("fail", org="acme", sync=True, tasks=jobsapp.tasks)
    assert failed.status == "failed" and failed.attempts == 3


def test_run_executes_one_queued_job_in_this_process(cli, client, monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))
    job = client.submit("echo", org="acme", payload={"n": 5})
    outcome = cli("run", job.job_id, "--org", "acme", "--app", APP)
    assert outcome.stdout == f"{job.job_id} completed\n", outcome.stderr
    result_id = client.get_job(job.job_id, org="acme").result_id
    stored = client.export()["results"][result_id]
    assert stored["value"] == {"echo": {"n": 5}, "attempt": 1}
    again = cli("run", job.job_id, "--org", "acme", "--app", APP)
    assert again.exit_code == 4 and "only a queued job can run" in again.stderr
    foreign = cli("run", job.job_id, "--org", "globex", "--app", APP)
    assert foreign.exit_code == 3


def test_a_task_log_carries_the_job_id_as_correlation_id(client, burst):
    job = client.submit("chatty", org="acme", payload={"words": "hello there"})
    proc = burst()
    assert f"[{job.job_id}] saying hello there" in proc.stderr


def test_workers_lists_each_worker_with_its_state(client, burst, cli):
    client.submit("echo", org="acme")
    burst()
    listed = json.loads(cli("workers", "--json").stdout)["workers"]
    assert len(listed) == 1
    worker = listed[0]
    assert worker["worker_id"].startswith("wrk_") and worker["state"] == "stopped"
    assert worker["queues"] == ["default"] and worker["processed_count"] == 1
    assert worker["gone"] is True
    assert "WORKER_ID" in cli("workers").stdout


def test_a_bad_app_is_a_clear_usage_error(burst, store_url, env):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asyncjobs",
            "--store",
            store_url,
            "worker",
            "--app",
            "no_such_module:tasks",
            "--burst",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: app: cannot import no_such_module")


@pytest.mark.jsonfile  # the JSON file's lock file
def test_a_worker_rides_out_a_store_locked_by_another_process(client, store_path, env):
    job = client.submit("echo", org="acme")
    holder = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "helpers" / "hold_lock.py"),
            f"{store_path}.lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asyncjobs",
                "--store",
                str(store_path),
                "--lock-timeout",
                "0.2",
                "worker",
                "--app",
                APP,
                "--burst",
                "--log-level",
                "warning",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: "store unavailable" in worker.stderr.readline(),
            what="the worker to meet the held lock",
        )
        assert worker.poll() is None  # still running, not crashed
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert worker.wait(timeout=30) == 0
    worker.stderr.close()
    assert client.get_job(job.job_id, org="acme").status == "completed"


def test_info_counts_a_busy_workers_jobs_as_the_summary_does(client, background, cli):
    """The worker record's list is written at heartbeats; what it holds is in the jobs."""
    for _ in range(4):
        client.submit("sleep", org="acme", payload={"seconds": 60})
    background("--concurrency", "4")
    wait_for(
        lambda: len(client.list_jobs(org="acme", status="running")) == 4,
        what="four jobs running",
    )
    info = json.loads(cli("info", "--json").stdout)
    assert info["running"] == 4
    assert sum(len(w["running"]) for w in info["workers"]) == 4
    (worker,) = json.loads(cli("workers", "--json").stdout)["workers"]
    assert len(worker["running"]) == 4


def test_a_trial_job_released_by_a_stopping_worker_does_not_wedge_its_breaker(
    client, burst, background, cli, tmp_path, runs_file
):
    flag, gate = tmp_path / "down", tmp_path / "gate"
    flag.touch()
    for _ in range(2):
        client.submit("dep.call", org="acme", payload={"flag": str(flag)})
    burst()  # two failures: the breaker opens
    (shown,) = json.loads(cli("breakers", "--json").stdout)["breakers"]
    assert shown["state"] == "open"
    trial = client.submit("dep.gated", org="acme", payload={"gate": str(gate)})
    worker = background("--grace", "0")
    wait_for(  # after the reset timeout the job runs as the breaker's trial
        lambda: client.get_job(trial.job_id, org="acme").status == "running",
        what="the trial job running",
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert client.get_job(trial.job_id, org="acme").status == "queued"
    gate.touch()
    burst()
    assert client.get_job(trial.job_id, org="acme").status == "completed"
    (shown,) = json.loads(cli("breakers", "--json").stdout)["breakers"]
    assert shown["state"] == "closed"


def test_a_burst_worker_with_beat_runs_the_periodic_slots_due_now(client, burst):
    worker = burst("--beat")
    assert worker.returncode == 0, worker.stderr
    ticks = [j for j in client.list_jobs(org="ops") if j.task == "tick"]
    assert len(ticks) == 1 and ticks[0].status == "completed"


def test_successes_behind_a_closed_breaker_do_not_rewrite_it(
    client, burst, cli, tmp_path
):
    flag = tmp_path / "down"
    flag.touch()
    client.submit("dep.call", org="acme", payload={"flag": str(flag)})
    burst()  # one failure: counted, the breaker stays closed
    flag.unlink()
    client.submit("dep.call", org="acme", payload={"flag": str(flag)})
    burst()  # a success: the count goes back to 0
    (before,) = json.loads(cli("breakers", "--json").stdout)["breakers"]
    assert (before["state"], before["failure_count"]) == ("closed", 0)
    for _ in range(3):
        client.submit("dep.call", org="acme", payload={"flag": str(flag)})
    burst()
    (after,) = json.loads(cli("breakers", "--json").stdout)["breakers"]
    assert after == before  # not written again: same updated_at


def test_a_breaker_that_never_failed_is_listed_closed(client, burst, cli):
    burst()  # the worker publishes its tasks, and with them their breakers
    (shown,) = json.loads(cli("breakers", "--json").stdout)["breakers"]
    assert (shown["name"], shown["state"], shown["failure_count"]) == (
        "dep",
        "closed",
        0,
    )
    assert "dep.call" in shown["tasks"]

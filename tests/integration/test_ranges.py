"""Every number and time a user gives has a finite range: outside it, exit 2 (HTTP 400,
InvalidInput from Python) with one line naming it, and not one byte written. Real
processes refusing them are in tests/system/test_ranges_processes.py."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from asyncjobs import Client, InvalidInput, TaskRegistry
from asyncjobs.worker.loop import Worker

from ..conftest import state_of, store_files

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(name="report")
def report() -> dict:
    return {}


FAR_AHEAD = "9999-12-31T23:59:59-12:00"  # past the year 9999 once in UTC
FAR_BACK = "0001-01-01T00:00:00+01:00"  # before the year 1 once in UTC
WORKER = ["worker", "-A", "jobsapp:tasks", "--burst"]
CLEANUP = ["cleanup", "--results-ttl-seconds", "1", "--events-ttl-seconds", "1"]


def refused(outcome, words: str) -> bool:
    return (
        outcome.exit_code == 2
        and outcome.stdout == ""
        and outcome.stderr.startswith("error: ")
        and outcome.stderr.count("\n") == 1
        and "Traceback" not in outcome.stderr
        and words in outcome.stderr
    )


@pytest.fixture
def stored(client, store_url, store_path):
    """A store with a finished job in it; its state and the sha256 of its files."""
    client.submit("report", org="acme", sync=True, tasks=tasks)
    client.submit("report", org="acme")
    return state_of(store_url, store_files(store_path))


BAD_OPTIONS = [
    # the lock wait of every command
    (["--lock-timeout", "inf", "jobs", "--org", "acme"], "'--lock-timeout'"),
    (["--lock-timeout", "nan", "jobs", "--org", "acme"], "'--lock-timeout'"),
    (["--lock-timeout", "3601", "jobs", "--org", "acme"], "'--lock-timeout'"),
    (["--lock-timeout", "-1", "jobs", "--org", "acme"], "'--lock-timeout'"),
    # worker
    ([*WORKER, "--lease-seconds", "1e300"], "'--lease-seconds'"),
    ([*WORKER, "--lease-seconds", "inf"], "'--lease-seconds'"),
    ([*WORKER, "--lease-seconds", "0"], "'--lease-seconds'"),
    ([*WORKER, "--heartbeat-seconds", "nan"], "'--heartbeat-seconds'"),
    ([*WORKER, "--heartbeat-seconds", "0"], "'--heartbeat-seconds'"),
    ([*WORKER, "--grace", "nan"], "'--grace'"),
    ([*WORKER, "--grace", "-1"], "'--grace'"),
    ([*WORKER, "--grace", "1e300"], "'--grace'"),
    ([*WORKER, "--poll-seconds", "nan"], "'--poll-seconds'"),
    ([*WORKER, "--poll-seconds", "-1"], "'--poll-seconds'"),
    ([*WORKER, "--poll-seconds", "0"], "'--poll-seconds'"),
    ([*WORKER, "--concurrency", "0"], "'--concurrency'"),
    ([*WORKER, "--concurrency", "1000000"], "'--concurrency'"),
    ([*WORKER, "--max-jobs", "0"], "'--max-jobs'"),
    ([*WORKER, "--max-jobs", str(10**30)], "'--max-jobs'"),
    # cleanup
    (
        ["cleanup", "--results-ttl-seconds", str(10**30), "--events-ttl-seconds", "1"],
        "'--results-ttl-seconds'",
    ),
    (
        ["cleanup", "--results-ttl-seconds", "1", "--events-ttl-seconds", "3153600001"],
        "'--events-ttl-seconds'",
    ),
    ([*CLEANUP, "--jobs-ttl-seconds", str(10**30)], "'--jobs-ttl-seconds'"),
    ([*CLEANUP, "--notifications-ttl-seconds", "-1"], "'--notifications-ttl-seconds'"),
    ([*CLEANUP, "--now", FAR_AHEAD], "--now:"),
    ([*CLEANUP, "--now", FAR_BACK], "--now:"),
    ([*CLEANUP, "--now", "1969-12-31T23:59:59Z"], "--now:"),
    ([*CLEANUP, "--now", "9000-01-01T00:00:01Z"], "--now:"),
    # submit
    (["submit", "report", "--org", "acme", "--at", FAR_AHEAD], "--at:"),
    (["submit", "report", "--org", "acme", "--at", FAR_BACK], "--at:"),
    (["submit", "report", "--org", "acme", "--at", "2100-01-01T00:00:00Z"], "--at:"),
    (["submit", "report", "--org", "acme", "--delay", "1e300"], "'--delay'"),
    (["submit", "report", "--org", "acme", "--delay", "nan"], "'--delay'"),
    (["submit", "report", "--org", "acme", "--priority", str(10**30)], "'--priority'"),
    (["submit", "report", "--org", "acme", "--max-retries", "101"], "'--max-retries'"),
    # lists and the rest
    (["jobs", "--org", "acme", "--limit", "0"], "'--limit'"),
    (["jobs", "--org", "acme", "--limit", str(10**30)], "'--limit'"),
    (["notifications", "job_x", "--org", "acme", "--limit", "10001"], "'--limit'"),
    (["inbox", "--org", "acme", "--limit", "-5"], "'--limit'"),
    (["info", "--watch", "nan"], "'--watch'"),
    (["serve", "--port", "65536"], "'--port'"),
]


@pytest.mark.parametrize("args, words", BAD_OPTIONS)
def test_an_option_outside_its_range_exits_2_naming_it_and_writes_nothing(
    cli, stored, store_url, store_path, args, words
):
    outcome = cli(*args)
    assert refused(outcome, words), outcome
    assert state_of(store_url, store_files(store_path)) == stored


@pytest.mark.parametrize(
    "variable, value",
    [
        ("ASYNCJOBS_LOCK_TIMEOUT", "inf"),
        ("ASYNCJOBS_LOCK_TIMEOUT", "nan"),
        ("ASYNCJOBS_MAX_PAYLOAD_BYTES", "0"),
        ("ASYNCJOBS_MAX_PAYLOAD_BYTES", str(10**30)),
        ("ASYNCJOBS_RESULT_INLINE_BYTES", "-1"),
        ("ASYNCJOBS_RESULT_INLINE_BYTES", "1e400"),
        ("ASYNCJOBS_STALE_SECONDS", "nan"),
        ("ASYNCJOBS_STALE_SECONDS", "inf"),
        ("ASYNCJOBS_LAYER_STALE_MS", "0"),
        ("ASYNCJOBS_LAYER_STALE_MS", "1e12"),
        ("ASYNCJOBS_LAYERS", "sales,no/slash"),
    ],
)
def test_a_number_in_the_environment_outside_its_range_exits_2_naming_it(
    cli, stored, store_url, store_path, variable, value
):
    outcome = cli("submit", "report", "--org", "acme", env={variable: value})
    assert refused(outcome, variable), outcome
    assert state_of(store_url, store_files(store_path)) == stored


def test_a_job_line_with_a_far_time_is_refused_by_its_line_number(
    cli, stored, store_url, store_path
):
    lines = [{"task": "report"}, {"task": "report", "at": FAR_AHEAD}]
    outcome = cli(
        "submit-many",
        "-",
        "--org",
        "acme",
        input="\n".join(json.dumps(line) for line in lines),
    )
    assert refused(outcome, "line 2: at:"), outcome
    assert state_of(store_url, store_files(store_path)) == stored


# -- the Python API refuses the same values --------------------------------------


@pytest.mark.parametrize(
    "ttl", [10**30, 1e300, math.inf, math.nan, -1, True, "60", 100 * 366 * 86400]
)
def test_cleanup_refuses_a_ttl_outside_100_years(
    client, stored, store_url, store_path, ttl
):
    with pytest.raises(InvalidInput, match="^results_ttl_seconds: "):
        client.cleanup(results_ttl_seconds=ttl, events_ttl_seconds=1)
    assert state_of(store_url, store_files(store_path)) == stored


@pytest.mark.parametrize(
    "now",
    [
        FAR_AHEAD,
        FAR_BACK,
        "1969-12-31T23:59:59Z",
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_cleanup_refuses_a_now_outside_1970_to_9000(
    client, stored, store_url, store_path, now
):
    with pytest.raises(InvalidInput, match="^now: "):
        client.cleanup(results_ttl_seconds=1, events_ttl_seconds=1, now=now)
    assert state_of(store_url, store_files(store_path)) == stored


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"at": FAR_AHEAD}, "at: "),
        ({"at": FAR_BACK}, "at: "),
        (
            {"at": datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))},
            "at: ",
        ),
        ({"at": "2036-11-02T12:00:00Z"}, "at: .*ten years"),
        ({"delay": 1e300}, "delay: "),
        ({"delay": math.inf}, "delay: "),
        ({"priority": 10**30}, "priority: "),
    ],
)
def test_submit_refuses_far_times_and_huge_numbers(
    client, stored, store_url, store_path, fields, words
):
    with pytest.raises(InvalidInput, match=f"^{words}"):
        client.submit("report", org="acme", **fields)
    assert state_of(store_url, store_files(store_path)) == stored


def test_a_time_ten_years_ahead_is_the_furthest_a_job_may_wait(client):
    job = client.submit("report", org="acme", at="2036-10-29T12:00:00Z")
    assert job.run_after == "2036-10-29T12:00:00.000000Z"
    past = client.submit("report", org="acme", at=FAR_BACK.replace("+01:00", "Z"))
    assert past.run_after == past.created_at


@pytest.mark.parametrize(
    "options, words",
    [
        ({"lease_seconds": math.inf}, "lease_seconds: "),
        ({"lease_seconds": 1e300}, "lease_seconds: "),
        ({"heartbeat_seconds": math.nan}, "heartbeat_seconds: "),
        ({"grace": math.nan}, "grace: "),
        ({"poll_interval": 0}, "poll_interval: "),
        ({"poll_interval": -1}, "poll_interval: "),
        ({"concurrency": 10**6}, "concurrency: "),
        ({"max_jobs": 0}, "max_jobs: "),
    ],
)
def test_a_worker_refuses_bad_numbers_before_it_registers(client, options, words):
    with pytest.raises(InvalidInput, match=f"^{words}"):
        Worker(client, tasks, **options)
    assert client.workers() == []


def test_a_client_refuses_an_endless_lock_wait(store_url):
    with pytest.raises(InvalidInput, match="^lock_timeout: "):
        Client(store_url, lock_timeout=math.inf)


@pytest.mark.parametrize(
    "declare, words",
    [
        (lambda r: r.task(name="t", retry_max_delay=1e300), "retry_max_delay: "),
        (lambda r: r.task(name="t", retry_delay=math.inf), "retry_delay: "),
        (lambda r: r.task(name="t", timeout=1e300), "timeout: "),
        (lambda r: r.periodic(name="t", every=math.inf), "every: "),
        (lambda r: r.breaker("b", reset_timeout=1e300), "reset_timeout: "),
        (lambda r: r.breaker("b", fail_max=10**30), "fail_max: "),
    ],
)
def test_task_options_refuse_times_no_clock_can_reach(declare, words):
    with pytest.raises(InvalidInput, match=f"^{words}"):
        decorator = declare(TaskRegistry())
        if decorator is not None:
            decorator(lambda: None)

"""Routing and the task catalog: a job takes its task's queue and priority from the
app, else from the catalog a worker publishes, else the defaults; unknown tasks and
payloads that do not fit are refused where they can be, and fail at once where not."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from asyncjobs import Client, InvalidInput, TaskRegistry
from asyncjobs import clock as clocks
from asyncjobs.domain.catalog import FIELDS
from asyncjobs.worker import execution

from ..conftest import data_files, state_of
from ..injection import asyncjobs_cmd
from ..integration.test_claiming import make_worker
from . import test_worker
from .test_http_served import fetch

pytestmark = pytest.mark.engines

APPS = Path(__file__).parents[1] / "apps"
ROOT = Path(__file__).resolve().parents[2]

# The real-worker fixtures of the worker tests.
burst = test_worker.burst  # env and runs_file come from conftest.py


@pytest.fixture
def app_importable(monkeypatch):
    """The test apps importable in this process (for --app in the in-process CLI)."""
    monkeypatch.syspath_prepend(str(APPS))


@contextmanager
def serving(store_url: str, *args: str) -> Iterator[str]:
    """A real `asyncjobs serve` on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncjobs", "--store", store_url, "serve"]
        + ["--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}"},
    )
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stderr.close()


@pytest.fixture
def publish(client, store_url, env):
    """Run a burst worker of an app (it publishes its tasks); returns its id."""

    def start(app: str) -> str:
        subprocess.run(
            asyncjobs_cmd(store_url, "worker", "--app", app, "--burst"),
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        return client.workers()[0]["worker_id"]  # newest first

    return start


def post(base: str, body: dict, org: str = "acme") -> tuple[int, dict]:
    return fetch(f"{base}/analyze/jobs", org=org, data=json.dumps(body).encode())


def routing_of(client: Client, job_id: str) -> tuple[str, int]:
    job = client.get_job(job_id, org="acme")
    return job.queue, job.priority


# -- the catalog a worker publishes ----------------------------------------------------


def test_a_worker_start_publishes_every_task_of_its_app(client, publish):
    assert client.catalog() == []
    publish("jobsapp:tasks")
    worker = publish("catalogapp:tasks")
    records = {r["name"]: r for r in client.catalog()}
    assert {"echo", "routed", "stepped", "tick", "dep.report"} <= set(records)
    assert [r["name"] for r in client.catalog()] == sorted(records)
    routed = records["routed"]
    assert list(routed) == list(FIELDS)
    assert routed["published_by"] == worker
    assert routed["published_at"].endswith("Z")
    assert {k: routed[k] for k in FIELDS[:-2]} == {
        "name": "routed",
        "queue": "reports",
        "priority": 8,
        "max_retries": 3,
        "retry_backoff": "exponential",
        "retry_delay": 1.0,
        "retry_delays": None,
        "retry_max_delay": 3600.0,
        "retry_jitter": False,
        "timeout": None,
        "soft_timeout": None,
        "breaker": None,
        "layer": "monthly_reports",
        "periodic": None,
    }
    assert records["stepped"]["retry_delays"] == [0.2, 0.5]
    assert records["stepped"]["retry_backoff"] is None
    assert records["dep.report"]["breaker"] == "dep"
    assert records["limited"]["timeout"] == 1.0
    assert records["tick"]["periodic"] == {
        "every": 1,
        "cron": None,
        "org": "ops",
        "payload": {},
    }


def test_a_second_start_replaces_its_tasks_records_and_keeps_every_other(
    client, publish
):
    first = publish("jobsapp:tasks")
    old = publish("catalogapp:v1")
    new = publish("catalogapp:v2")
    records = {r["name"]: r for r in client.catalog()}
    a, b = records["catalog.a"], records["catalog.b"]
    assert (a["queue"], a["priority"], a["published_by"]) == ("fast", 9, new)
    assert (a["retry_delays"], a["max_retries"]) == ([60, 300, 1800], 3)
    assert (b["queue"], b["published_by"]) == ("default", old)  # v2 lacks it: kept
    assert records["echo"]["published_by"] == first  # another app's: untouched
    job = client.submit("catalog.a", org="acme")
    assert routing_of(client, job.job_id) == ("fast", 9)


def test_retention_export_and_store_check_keep_the_catalog(client, burst, cli):
    done = client.submit("echo", org="acme")
    burst()
    catalog = client.catalog()
    assert client.get_job(done.job_id, org="acme").status == "completed"
    cleaned = json.loads(
        cli(
            "cleanup",
            "--results-ttl-seconds",
            "0",
            "--events-ttl-seconds",
            "0",
            "--notifications-ttl-seconds",
            "0",
            "--jobs-ttl-seconds",
            "0",
            "--now",
            "2999-01-01T00:00:00Z",
        ).stdout
    )
    assert cleaned["jobs"]["delete_count"] == 1
    assert client.catalog() == catalog
    exported = json.loads(cli("store", "export").stdout)
    assert sorted(exported["tasks"]) == [r["name"] for r in catalog]
    check = json.loads(cli("store", "check", "--strict", "--json").stdout)
    assert check["ok"] and check["counts"]["tasks"] == len(catalog)
    with client.store.transaction() as tx:  # what a hand edit or another tool leaves
        tx.put("tasks", "half", {"name": "half", "queue": "q"})
    broken = cli("store", "check", "--json")
    assert broken.exit_code == 5
    assert "task half in the catalog lacks 'priority'" in broken.stdout
    refused = cli("submit", "half", "--org", "acme")
    assert refused.exit_code == 5 and "task half in the catalog" in refused.stderr


# -- where a job's queue and priority come from ----------------------------------------


def test_with_no_app_and_an_empty_catalog_any_task_gets_the_defaults(client, cli):
    job = client.submit("anything.at.all", org="acme")
    assert routing_of(client, job.job_id) == ("default", 5)
    shown = json.loads(cli("submit", "whatever", "--org", "acme", "--json").stdout)
    assert (shown["queue"], shown["priority"]) == ("default", 5)


def test_a_named_app_gives_the_tasks_queue_and_priority(
    client, cli, app_importable, store_url
):
    from catalogapp import tasks as registry

    with Client(store_url, app=registry) as declared:
        by_registry = declared.submit("routed", org="acme")
    with Client(store_url, app="catalogapp:tasks") as named:
        by_name = named.submit("routed", org="acme")
    by_argument = client.submit("routed", org="acme", tasks=registry)
    explicit = client.submit(
        "routed", org="acme", tasks=registry, queue="urgent", priority=1
    )
    by_flag = cli("submit", "routed", "--org", "acme", "--app", "catalogapp:tasks")
    by_env = cli(
        "submit", "routed", "--org", "acme", env={"ASYNCJOBS_APP": "catalogapp:tasks"}
    )
    many = cli(
        "submit-many",
        "-",
        "--org",
        "acme",
        "-A",
        "catalogapp:tasks",
        input='{"task": "routed"}\n{"task": "routed", "priority": 2}\n',
    )
    for job_id in (by_registry.job_id, by_name.job_id, by_argument.job_id):
        assert routing_of(client, job_id) == ("reports", 8)
    for outcome in (by_flag, by_env):
        assert routing_of(client, outcome.stdout.strip()) == ("reports", 8)
    first, second = many.stdout.split()
    assert routing_of(client, first) == ("reports", 8)
    assert routing_of(client, second) == ("reports", 2)
    assert routing_of(client, explicit.job_id) == ("urgent", 1)


def test_without_the_app_the_catalog_gives_them(client, publish, cli, server):
    publish("catalogapp:tasks")
    from_python = client.submit("routed", org="acme")
    from_cli = cli("submit", "routed", "--org", "acme").stdout.strip()
    status, from_http = post(server, {"task": "routed", "priority": None})
    overridden = client.submit("routed", org="acme", priority=0)
    assert status == 202
    for job_id in (from_python.job_id, from_cli, from_http["job_id"]):
        assert routing_of(client, job_id) == ("reports", 8)
    assert routing_of(client, overridden.job_id) == ("reports", 0)


def test_a_periodic_task_is_enqueued_with_its_declared_queue_and_priority(client):
    tasks = TaskRegistry()

    @tasks.periodic(name="nightly", every=60, queue="maintenance", priority=2)
    def nightly() -> None: ...

    (job,) = client.enqueue_periodic(tasks)
    assert (job.task, job.queue, job.priority, job.org_id) == (
        "nightly",
        "maintenance",
        2,
        "system",
    )


def test_the_submit_attached_to_a_task_takes_its_declared_routing(client):
    tasks = TaskRegistry()

    @tasks.task(name="reports.build", queue="reports", priority=7)
    def build(month: str) -> dict:
        return {"month": month}

    assert build("2026-10") == {"month": "2026-10"}  # still the plain function
    job = build.submit(client, org="acme", month="2026-11")
    assert (job.task, job.queue, job.priority) == ("reports.build", "reports", 7)
    assert job.payload == {"month": "2026-11"}
    with pytest.raises(InvalidInput, match="needs 'month'"):
        build.submit(client, org="acme")


@pytest.mark.parametrize(
    "options, words",
    [
        ({"priority": 10}, "priority: 10 is not a whole number"),
        ({"priority": 2.5}, "priority: 2.5"),
        ({"layer": "a b"}, "layer: 'a b' is not a valid name"),
    ],
)
def test_a_bad_priority_or_layer_is_refused_at_declaration(options, words):
    tasks = TaskRegistry()
    with pytest.raises(InvalidInput, match=re.escape(words)):
        tasks.task(name="t", **options)(lambda: None)
    assert tasks.tasks == {}


# -- unknown tasks ---------------------------------------------------------------------


def test_an_unknown_task_is_refused_once_a_worker_published_the_catalog(
    client, burst, cli, server, store_url, store_path
):
    assert client.submit("typo.task", org="acme")  # an empty catalog takes anything
    burst()
    before = state_of(store_url, data_files(store_path))
    with pytest.raises(InvalidInput, match="unknown task typo.task"):
        client.submit("typo.task", org="acme")
    refused = cli("submit", "typo.task", "--org", "acme")
    many = cli(
        "submit-many",
        "-",
        "--org",
        "acme",
        input='{"task": "echo"}\n\n{"task": "typo.task"}\n',
    )
    status, answer = post(server, {"task": "typo.task"})
    assert refused.exit_code == 2 and "unknown task typo.task" in refused.stderr
    assert refused.stdout == ""
    assert many.exit_code == 2 and "line 3: unknown task typo.task" in many.stderr
    assert status == 400 and answer["error"]["code"] == "invalid_input"
    assert "unknown task typo.task" in answer["error"]["message"]
    assert state_of(store_url, data_files(store_path)) == before  # nothing was written

    anyway = [
        client.submit("typo.task", org="acme", allow_unknown=True).job_id,
        cli("submit", "typo.task", "--org", "acme", "--allow-unknown").stdout.strip(),
        post(server, {"task": "typo.task", "allow_unknown": True})[1]["job_id"],
        cli(
            "submit-many",
            "-",
            "--org",
            "acme",
            "--allow-unknown",
            input='{"task": "typo.task"}\n',
        ).stdout.strip(),
    ]
    for job_id in anyway:
        assert routing_of(client, job_id) == ("default", 5)
    for wrong in ("yes", 1, 0):
        status, answer = post(server, {"task": "echo", "allow_unknown": wrong})
        assert status == 400, wrong
        assert f"allow_unknown: {wrong!r}" in answer["error"]["message"]


def test_a_named_app_refuses_a_task_it_does_not_declare(client, cli, app_importable):
    with pytest.raises(InvalidInput, match="unknown task typo.task: the app"):
        Client(client.store, app="jobsapp:tasks").submit("typo.task", org="acme")
    refused = cli("submit", "typo.task", "--org", "acme", "--app", "jobsapp:tasks")
    assert refused.exit_code == 2 and "unknown task typo.task" in refused.stderr
    anyway = cli(
        "submit",
        "typo.task",
        "--org",
        "acme",
        "--app",
        "jobsapp:tasks",
        "--allow-unknown",
    )
    assert routing_of(client, anyway.stdout.strip()) == ("default", 5)


def test_serve_with_an_app_routes_and_refuses_by_it(client, store_url):
    with serving(store_url, "--app", "catalogapp:tasks") as base:
        status, created = post(base, {"task": "routed"})
        refused = post(base, {"task": "typo.task"})
        misfit = post(base, {"task": "routed", "payload": {"mnth": "2026-10"}})
        spec = fetch(f"{base}/openapi.json")[1]
    assert status == 202 and routing_of(client, created["job_id"]) == ("reports", 8)
    assert (
        refused[0] == 400 and "unknown task typo.task" in refused[1]["error"]["message"]
    )
    assert misfit[0] == 400 and "takes no 'mnth'" in misfit[1]["error"]["message"]
    submission = spec["components"]["schemas"]["Submission"]["properties"]
    assert submission["allow_unknown"]["type"] == ["boolean", "null"]


# -- payloads that do not fit ----------------------------------------------------------


def test_a_payload_that_does_not_fit_fails_at_once_without_retries_or_breaker(
    client, burst, runs_file
):
    misfits = [
        client.submit("dep.report", org="acme", payload=payload)
        for payload in (
            {},
            {"month": "2026-10", "colour": "red"},
            {"month": "2026-10", "job": "mine"},
        )
    ]
    good = client.submit("dep.report", org="acme", payload={"month": "2026-10"})
    burst()
    for job, words in zip(
        misfits,
        (
            "task dep.report needs 'month'",
            "task dep.report takes no 'colour'",
            "'job' is the worker's parameter of task dep.report",
        ),
    ):
        failed = client.get_job(job.job_id, org="acme")
        assert failed.status == "failed" and failed.attempts == 1  # max_retries=3
        assert failed.error["type"] == "InvalidPayload"
        assert words in failed.error["message"]
        assert job.job_id not in test_worker.starts(runs_file)  # never called
    assert client.get_job(good.job_id, org="acme").status == "completed"
    # Three failures behind a breaker with fail_max=2, and it never counted one.
    assert [(b["name"], b["failure_count"]) for b in client.breakers()] in (
        [],
        [("dep", 0)],
    )
    events = [e.event_type for e in client.events(misfits[0].job_id, org="acme")]
    assert "async.job.retry_scheduled" not in events


def test_a_breaker_trial_with_a_misfit_payload_leaves_the_next_job_to_try(
    client, clock
):
    tasks = TaskRegistry()
    tasks.breaker("dep", fail_max=1, reset_timeout=10)

    @tasks.task(name="dep.call", breaker="dep", max_retries=0)
    def call(month: str) -> str:
        if month == "down":
            raise ConnectionError("the dependency is down")
        return month

    worker = make_worker(client)

    def run_next() -> None:
        ((job, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
        outcome = execution.run(tasks.get(job.task), execution.spec_of(job))
        client.exchange(worker, [(token, outcome)], want=0, registry=tasks)

    client.submit("dep.call", org="acme", payload={"month": "down"})
    run_next()
    assert client.breakers()[0]["state"] == "open"
    clock.advance(11)
    misfit = client.submit("dep.call", org="acme", payload={"mnth": "2026-10"})
    run_next()  # the trial: it says nothing of the dependency
    assert client.get_job(misfit.job_id, org="acme").error["type"] == "InvalidPayload"
    (breaker,) = client.breakers()
    assert (breaker["state"], breaker["failure_count"]) == ("open", 1)
    assert breaker["reopens_at"] == clocks.to_iso(clock())  # a trial is due now
    good = client.submit("dep.call", org="acme", payload={"month": "2026-10"})
    run_next()  # claimed at once as the next trial, and it closes the breaker
    assert client.get_job(good.job_id, org="acme").status == "completed"
    assert client.breakers()[0]["state"] == "closed"


def test_submit_with_the_app_refuses_a_payload_that_does_not_fit(
    client, cli, app_importable, store_url, store_path
):
    before = state_of(store_url, data_files(store_path))
    outcomes = [
        cli(
            "submit",
            "dep.report",
            "--org",
            "acme",
            "--app",
            "jobsapp:tasks",
            "--payload",
            payload,
        )
        for payload in (
            "{}",
            '{"month": "2026-10", "colour": "red"}',
            '{"month": "2026-10", "job": 1}',
        )
    ]
    words = [
        "payload: task dep.report needs 'month'",
        "payload: task dep.report takes no 'colour'",
        "payload: 'job' is the worker's parameter",
    ]
    for outcome, expected in zip(outcomes, words):
        assert outcome.exit_code == 2 and expected in outcome.stderr
    with Client(store_url, app="jobsapp:tasks") as named:
        with pytest.raises(InvalidInput, match="needs 'month'"):
            named.submit("dep.report", org="acme")
    assert state_of(store_url, data_files(store_path)) == before
    # Without the app nothing knows the parameters: the worker refuses it instead.
    assert client.submit("dep.report", org="acme").status == "queued"


def test_a_periodic_payload_that_does_not_fit_is_refused_at_declaration():
    tasks = TaskRegistry()
    with pytest.raises(InvalidInput, match="payload: task nightly needs 'month'"):

        @tasks.periodic(name="nightly", every=60)
        def nightly(month: str) -> None: ...

    @tasks.periodic(name="nightly", every=60, payload={"month": "2026-10"})
    def fits(month: str) -> None: ...

    assert tasks.periodics["nightly"].payload == {"month": "2026-10"}


def test_a_bound_method_can_still_be_a_task(client):
    class Reports:
        def build(self, month: str) -> str:
            return month

    tasks = TaskRegistry()
    tasks.task(name="reports.build", priority=6)(Reports().build)
    job = client.submit(
        "reports.build", org="acme", payload={"month": "x"}, tasks=tasks
    )
    assert job.priority == 6

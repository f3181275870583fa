"""Bulk retry and cancel by filter, from Python and the CLI, on every engine.

An operator replays the failed jobs of a queue after fixing their cause, or
cancels what is left of a bad batch: only the org's jobs that match change,
at most a limit per call, each exactly once however many calls it takes.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from asyncjobs import InvalidInput
from asyncjobs.domain import bulk
from asyncjobs.tasks import TaskRegistry

from ..conftest import exported
from .test_claiming import make_worker

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(name="mail.send", queue="mail", max_retries=0)
def send() -> None: ...


@tasks.task(name="reports.build", queue="reports", max_retries=0)
def build() -> None: ...


def failed(client, org: str, task: str, count: int, error: str = "ValueError"):
    """``count`` jobs of the org that ran once and failed with ``error``."""
    submitted = client.submit_many(
        [{"task": task, "org": org} for _ in range(count)], tasks=tasks
    )
    ids = {job.job_id for job in submitted}
    worker = dataclasses.replace(
        make_worker(client, f"{org}-{task}"), queues=["mail", "reports"]
    )
    _, claimed = client.exchange(worker, [], want=count, registry=tasks)
    outcomes = [
        (token, {"job_id": job.job_id, "ok": False, "error": {"type": error}})
        for job, token in claimed
        if job.job_id in ids
    ]
    assert len(outcomes) == count
    finished, _ = client.exchange(worker, outcomes, want=0, registry=tasks)
    assert {job.status for job in finished} == {"failed"}
    return sorted(ids)


def statuses(client, org: str) -> dict[str, tuple[str, int]]:
    return {
        job["job_id"]: (job["status"], job["run"])
        for job in exported(client, "jobs", org_id=org)
    }


def test_retry_all_queues_again_only_the_orgs_failed_jobs_that_match(client):
    mail = failed(client, "acme", "mail.send", 3)
    reports = failed(client, "acme", "reports.build", 2)
    theirs = failed(client, "globex", "mail.send", 2)
    done = client.retry_matching(org="acme", queue="mail")
    assert (done.action, done.count, done.more, done.dry_run) == (
        "retry",
        3,
        False,
        False,
    )
    assert sorted(done.ids) == mail
    after = statuses(client, "acme")
    assert all(after[i] == ("queued", 2) for i in mail)
    assert all(after[i] == ("failed", 1) for i in reports)
    assert set(statuses(client, "globex").values()) == {("failed", 1)}
    assert set(theirs) == set(statuses(client, "globex"))


def test_a_dry_run_counts_what_would_change_and_changes_nothing(client):
    failed(client, "acme", "mail.send", 4)
    before = exported(client, "jobs"), exported(client, "events")
    done = client.retry_matching(org="acme", dry_run=True, limit=3)
    assert (done.count, len(done.ids), done.more, done.dry_run) == (3, 3, True, True)
    assert (exported(client, "jobs"), exported(client, "events")) == before


def test_capped_calls_reach_every_failed_job_exactly_once(client):
    ids = failed(client, "acme", "mail.send", 2500)
    counts, seen = [], []
    while True:
        done = client.retry_matching(org="acme", limit=1000)
        counts.append(done.count)
        seen += done.ids
        if not done.more:
            break
    assert counts == [1000, 1000, 500]
    assert sorted(seen) == ids  # each once
    assert set(statuses(client, "acme").values()) == {("queued", 2)}
    retried = [
        e for e in exported(client, "events") if e["data"].get("reason") == "retry"
    ]
    assert sorted(e["job_id"] for e in retried) == ids


def test_filters_by_time_and_error_type(client, clock):
    old = failed(client, "acme", "mail.send", 2, error="TimeoutError")
    clock.advance(3600)
    new_timeouts = failed(client, "acme", "mail.send", 2, error="TimeoutError")
    new_other = failed(client, "acme", "mail.send", 1, error="KeyError")
    since = "2026-11-01T12:30:00Z"
    assert sorted(
        client.retry_matching(
            org="acme", failed_since=since, error_type="TimeoutError", dry_run=True
        ).ids
    ) == sorted(new_timeouts)
    assert sorted(
        client.retry_matching(org="acme", created_before=since, dry_run=True).ids
    ) == sorted(old)
    assert (
        client.retry_matching(org="acme", error_type="KeyError", dry_run=True).ids
        == new_other
    )


def test_cancel_all_cancels_queued_jobs_and_asks_running_ones_to_stop_once(client):
    queued = [client.submit("mail.send", org="acme", tasks=tasks) for _ in range(3)]
    worker = dataclasses.replace(make_worker(client), queues=["mail"])
    _, claimed = client.exchange(worker, [], want=1, registry=tasks)
    running = claimed[0][0]
    other = client.submit("mail.send", org="globex", tasks=tasks)
    done = client.cancel_matching(org="acme", queue="mail")
    assert done.count == 3 and not done.more
    after = {j["job_id"]: j for j in exported(client, "jobs")}
    assert after[running.job_id]["status"] == "running"
    assert after[running.job_id]["cancel_requested_at"] is not None
    assert sum(after[j.job_id]["status"] == "canceled" for j in queued) == 2
    assert after[other.job_id]["status"] == "queued"
    again = client.cancel_matching(org="acme", queue="mail")
    assert (again.count, again.ids, again.more) == (0, [], False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (dict(status="running"), "status: retry takes failed, canceled or completed"),
        (dict(limit=0), "limit: 0 is not a whole number from 1 to 1000"),
        (dict(limit=1001), "limit: 1001 is not a whole number from 1 to 1000"),
        (dict(failed_since="last week"), "failed_since: not an ISO 8601 time"),
        (dict(queue="no such/queue"), "queue:"),
        (dict(error_type=""), "error_type:"),
    ],
)
def test_bad_filters_are_refused_and_change_nothing(client, call, message):
    failed(client, "acme", "mail.send", 2)
    before = exported(client, "jobs")
    with pytest.raises(InvalidInput, match=message):
        client.retry_matching(org="acme", **call)
    assert exported(client, "jobs") == before


# -- the CLI --------------------------------------------------------------------


def test_the_cli_retries_all_that_match_and_says_when_more_remain(client, cli):
    ids = failed(client, "acme", "mail.send", 3)
    dry = cli("retry", "--all", "--org", "acme", "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["count"] == 3
    first = cli("retry", "--all", "--org", "acme", "--status", "failed", "--limit", "2")
    assert first.exit_code == 0
    assert first.stdout.splitlines()[0] == "retried 2 jobs"
    assert "more jobs match: run it again" in first.stderr
    rest = cli("retry", "--all", "--org", "acme", "--queue", "mail", "--json")
    doc = json.loads(rest.stdout)
    assert (doc["count"], doc["more"]) == (1, False)
    assert sorted(first.stdout.splitlines()[1:] + doc["ids"]) == ids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retry"], "give a job id, or --all with filters"),
        (["retry", "job_x", "--all"], "give a job id or --all, not both"),
        (["retry", "job_x", "--status", "failed"], "--status goes with --all"),
        (["retry", "--all", "--since", "soon"], "--since: not an ISO 8601 time"),
        (["cancel", "--all", "--status", "failed"], "status: cancel takes queued"),
    ],
)
def test_the_cli_refuses_a_bulk_call_it_cannot_take_in_one_line(
    client, cli, args, message
):
    failed(client, "acme", "mail.send", 1)
    before = exported(client, "jobs")
    outcome = cli(*args, "--org", "acme")
    assert outcome.exit_code == 2
    assert outcome.stderr.count("\n") == 1 and message in outcome.stderr
    assert exported(client, "jobs") == before


def test_all_orgs_goes_org_by_org_within_one_limit(client):
    acme = failed(client, "acme", "mail.send", 2)
    globex = failed(client, "globex", "mail.send", 2)
    initech = failed(client, "initech", "mail.send", 1)
    first = client.retry_matching(org=None, limit=3)
    assert (first.count, first.more) == (3, True)
    assert sorted(first.ids[:2]) == acme and first.ids[2] in globex
    full = client.retry_matching(org=None, limit=2)
    assert (sorted(full.ids), full.more) == (
        sorted(set(globex) - {first.ids[2]} | set(initech)),
        False,
    )
    assert client.retry_matching(org=None).count == 0


def test_the_cli_takes_all_orgs_with_all_only(client, cli):
    ids = failed(client, "acme", "mail.send", 1) + failed(
        client, "globex", "mail.send", 1
    )
    done = cli("retry", "--all", "--all-orgs", "--json")
    assert done.exit_code == 0 and sorted(json.loads(done.stdout)["ids"]) == sorted(ids)
    for args, message in [
        (["retry", ids[0], "--all-orgs"], "--all-orgs goes with --all"),
        (["retry", "--all", "--all-orgs", "--org", "acme"], "not both"),
        (["cancel", "--all"], "give --org ORG, or --all-orgs"),
    ]:
        outcome = cli(*args)
        assert outcome.exit_code == 2 and message in outcome.stderr, outcome


def test_jobs_lists_those_of_one_error_type(client, cli):
    smtp = failed(client, "acme", "mail.send", 2, error="SMTPError")
    failed(client, "acme", "mail.send", 1, error="KeyError")
    shown = cli("jobs", "--org", "acme", "--error-type", "SMTPError", "--json")
    assert shown.exit_code == 0
    assert sorted(j["job_id"] for j in json.loads(shown.stdout)["jobs"]) == smtp


def test_a_count_of_the_matches_reads_them_all_and_stops_at_its_cap(client):
    failed(client, "acme", "mail.send", 5)
    failed(client, "acme", "reports.build", 2)
    assert client.count_matching("retry", org="acme") == bulk.Count(7, more=False)
    assert client.count_matching("retry", org="acme", task="reports.build").jobs == 2
    assert client.count_matching("retry", org="acme", up_to=4) == bulk.Count(
        4, more=True
    )
    assert client.count_matching("cancel", org="acme").jobs == 0
    assert client.list_jobs(org="acme", status="queued") == []  # nothing changed

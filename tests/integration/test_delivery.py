"""Result permalinks, large results, notifications and the inbox (Python API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncjobs import Client, NotFound, StoreCorrupt, TaskRegistry

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(name="report")
def report(rows: int = 3) -> dict:
    return {"rows": list(range(rows))}


@tasks.task(name="broken", max_retries=0)
def broken() -> None:
    raise RuntimeError("no")


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def client(store_url, clock, artifacts):
    with Client(store_url, clock=clock, artifacts=artifacts) as c:
        yield c


def run(client: Client, task: str = "report", org: str = "acme", **payload) -> str:
    job = client.submit(task, org=org, payload=payload, sync=True, tasks=tasks)
    return job.job_id


def rerun(client: Client, job_id: str, org: str = "acme") -> None:
    client.retry(job_id, org=org)
    client.run_job(job_id, org=org, tasks=tasks)


def test_latest_serves_the_newest_version_and_pinned_the_one_asked_for(client, clock):
    job_id = run(client, rows=1)
    first = client.get_job(job_id, org="acme").result_id
    clock.advance(5)
    rerun(client, job_id)
    second = client.get_job(job_id, org="acme").result_id
    assert first != second
    latest = client.get_result(first, org="acme")
    assert latest["result_id"] == second and latest["requested_result_id"] == first
    assert latest["projection_mode"] == "latest" and latest["job_id"] == job_id
    pinned = client.get_result(first, org="acme", view="pinned")
    assert pinned["result_id"] == first and pinned["projection_mode"] == "pinned"
    assert set(pinned) == {
        "result_id",
        "requested_result_id",
        "projection_mode",
        "job_id",
        "org_id",
        "task",
        "value",
        "created_at",
    }
    assert pinned["value"] == {"rows": [0]} and pinned["task"] == "report"


def test_another_orgs_result_is_missing(client):
    result_id = client.get_job(run(client), org="acme").result_id
    with pytest.raises(NotFound) as foreign:
        client.get_result(result_id, org="globex")
    assert str(foreign.value) == f"result {result_id} not found"
    with pytest.raises(NotFound, match="result res_x not found"):
        client.get_result("res_x", org="acme")


def test_a_large_value_lives_in_a_private_file_and_reads_back_checked(
    artifacts, monkeypatch, request
):
    monkeypatch.setenv("ASYNCJOBS_RESULT_INLINE_BYTES", "200")
    client = request.getfixturevalue("client")  # a Client reads the setting when made
    job_id = run(client, rows=100)
    result_id = client.get_job(job_id, org="acme").result_id
    path = artifacts / "results" / "acme" / f"{result_id}.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"rows": list(range(100))}
    record = client.export()["results"][result_id]
    assert record["value"] is None and record["value_file"] == str(path)
    assert (
        record["value_bytes"] == path.stat().st_size
        and len(record["value_sha256"]) == 64
    )
    assert client.get_result(result_id, org="acme")["value"] == {
        "rows": list(range(100))
    }
    small = client.get_job(run(client, rows=2), org="acme").result_id
    assert not (artifacts / "results" / "acme" / f"{small}.json").exists()
    path.write_text(json.dumps({"rows": "tampered"}))
    with pytest.raises(StoreCorrupt, match="does not match its sha256"):
        client.get_result(result_id, org="acme")


def test_notifications_come_latest_first_one_per_terminal_transition(client, clock):
    job_id = run(client)
    clock.advance(1)
    rerun(client, job_id)
    clock.advance(1)
    client.retry(job_id, org="acme")
    client.cancel(job_id, org="acme")
    found = client.notifications(job_id, org="acme")
    assert [n.event_type for n in found] == [
        "async.job.canceled",
        "async.job.completed",
        "async.job.completed",
    ]
    assert [n.dedupe_key.rsplit(":", 1)[1] for n in found] == [
        "run-3",
        "run-2",
        "run-1",
    ]
    assert all(n.channel == "in_app" and n.read_at is None for n in found)
    assert len(client.notifications(job_id, org="acme", limit=1)) == 1
    with pytest.raises(NotFound):
        client.notifications(job_id, org="globex")


def test_the_inbox_lists_and_marks_read_only_the_orgs_notifications(client, clock, cli):
    mine = [run(client) for _ in range(3)]
    theirs = run(client, org="globex")
    inbox = client.inbox(org="acme")
    assert {n.job_id for n in inbox} == set(mine)
    first = inbox[0].notification_id
    assert client.mark_read(org="acme", notification_ids=[first]) == 1
    assert len(client.inbox(org="acme", unread=True)) == 2
    foreign = client.inbox(org="globex")[0].notification_id
    with pytest.raises(NotFound):
        client.mark_read(org="acme", notification_ids=[first, foreign])
    assert len(client.inbox(org="acme", unread=True)) == 2  # nothing changed
    assert (
        cli("inbox", "mark-read", "--org", "acme", "--all").stdout == "2 marked read\n"
    )
    assert cli("inbox", "--org", "acme", "--unread", "--json").stdout.count("ntf_") == 0
    assert client.inbox(org="globex", unread=True)[0].job_id == theirs
    both = cli("inbox", "mark-read", "--org", "acme", first, "--all")
    neither = cli("inbox", "mark-read", "--org", "acme")
    assert both.exit_code == neither.exit_code == 2
    assert cli("inbox", "mark-read", "--org", "acme", foreign).exit_code == 3


def test_result_and_notifications_from_the_cli(client, cli, clock):
    job_id = run(client, rows=2)
    result_id = client.get_job(job_id, org="acme").result_id
    doc = json.loads(cli("result", result_id, "--org", "acme", "--json").stdout)
    assert doc["value"] == {"rows": [0, 1]} and doc["projection_mode"] == "latest"
    assert json.loads(cli("result", result_id, "--org", "acme").stdout) == {
        "rows": [0, 1]
    }
    foreign = cli("result", result_id, "--org", "globex")
    missing = cli("result", "res_00000000000000000000000000", "--org", "globex")
    assert foreign.exit_code == missing.exit_code == 3
    assert foreign.stderr == f"error: result {result_id} not found\n"
    assert cli("result", result_id, "--org", "acme", "--view", "newest").exit_code == 2
    listed = json.loads(cli("notifications", job_id, "--org", "acme", "--json").stdout)
    assert listed["job_id"] == job_id and len(listed["notifications"]) == 1
    assert set(listed["notifications"][0]) == {
        "notification_id",
        "job_id",
        "org_id",
        "channel",
        "event_type",
        "dedupe_key",
        "created_at",
        "read_at",
    }
    bad_channel = cli("notifications", job_id, "--org", "acme", "--channel", "email")
    assert bad_channel.exit_code == 2 and "channel" in bad_channel.stderr


def test_store_check_reports_a_terminal_job_without_its_notification(client, cli):
    job_id = run(client)
    assert cli("store", "check").exit_code == 0
    with client.store.transaction() as tx:
        for note in tx.find("notifications_by_job", job_id):
            tx.delete("notifications", note["notification_id"])
    outcome = cli("store", "check")
    assert outcome.exit_code == 5
    assert f"job {job_id} is terminal but has no in-app notification" in outcome.stderr


def test_counters_do_not_go_down_when_records_are_deleted(client):
    done = [run(client) for _ in range(3)]
    run(client, task="broken")
    before = client.stats()["counters"]
    with client.store.transaction() as tx:  # gone by any means, not only a cleanup
        for job_id in done:
            tx.delete("jobs", job_id)
    after = client.stats()
    assert (
        after["counters"]["jobs_completed_total"] == before["jobs_completed_total"] == 3
    )
    assert after["counters"]["jobs_failed_total"] == 1
    assert after["duration"]["count"] == 4


def test_info_shows_queues_workers_and_failures(store_url, artifacts, cli):
    client = Client(store_url, artifacts=artifacts)  # the wall clock, as the CLI's
    client.submit("report", org="acme", queue="reports")
    run(client, task="broken")
    client.close()
    doc = json.loads(cli("info", "--json").stdout)
    assert doc["queues"]["reports"]["depth"] == 1 and doc["failed_1h"] == 1
    assert doc["running"] == 0 and doc["workers"] == []
    text = cli("info").stdout
    assert "reports" in text and "failed in the last hour: 1" in text
    assert "acme" not in json.dumps(doc)  # no org ids in operator figures

"""TTL retention: what goes, what stays, dry runs, the audit artifact (the cron script
and other real processes are in tests/system/test_retention_processes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncjobs import Client, TaskRegistry
from asyncjobs.clock import to_iso
from asyncjobs.records import WorkerInfo

from ..conftest import data_files, make_unreadable, sha256_of, state_of, store_files

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(name="report")
def report(size: int = 1) -> dict:
    return {"rows": "x" * size}


@pytest.fixture
def client(store_url, clock, tmp_path):
    with Client(store_url, clock=clock, artifacts=tmp_path / "artifacts") as c:
        yield c


def ids_of(client: Client, kind: str) -> set[str]:
    return set(client.export()[kind])


def cleanup(client: Client, **kwargs):
    args = {"results_ttl_seconds": 3600, "events_ttl_seconds": 3600, **kwargs}
    return client.cleanup(**args)


def zero_ttl_cleanup(cli, *args: str):
    """``asyncjobs cleanup`` with results and events kept for 0 seconds."""
    return cli(
        "cleanup", "--results-ttl-seconds", "0", "--events-ttl-seconds", "0", *args
    )


def test_only_records_of_terminal_jobs_older_than_their_ttl_go(client, clock):
    old = client.submit("report", org="acme", sync=True, tasks=tasks)
    waiting = client.submit("report", org="acme")  # queued: never touched
    clock.advance(7200)
    young = client.submit("report", org="acme", sync=True, tasks=tasks)
    doc = cleanup(client)
    old_job = client.get_job(old.job_id, org="acme")
    assert doc["results"]["deleted_ids"] == [old_job.result_id]
    assert ids_of(client, "results") == {
        client.get_job(young.job_id, org="acme").result_id
    }
    remaining_events = {e.job_id for e in client.events(waiting.job_id, org="acme")}
    assert remaining_events == {waiting.job_id}
    assert client.events(old.job_id, org="acme") == []
    assert len(client.events(young.job_id, org="acme")) == 3
    assert doc["terminal_job_count"] == 2 and doc["jobs"]["delete_count"] == 0
    assert doc["notifications"]["delete_count"] == 0  # off unless asked
    assert client.check().ok


def test_the_ttl_boundary_keeps_a_record_exactly_as_old_as_its_ttl(client, clock):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    clock.advance(3600)
    assert cleanup(client, dry_run=True)["results"]["delete_count"] == 0
    clock.advance(0.001)
    assert cleanup(client, dry_run=True)["results"]["delete_count"] == 1


def test_a_record_without_a_timestamp_is_kept_and_counted(client, clock):
    job = client.submit("report", org="acme", sync=True, tasks=tasks)
    with client.store.transaction() as tx:
        for event in tx.find("events_by_job", job.job_id):
            tx.put(
                "events",
                event["event_id"],
                {k: v for k, v in event.items() if k != "created_at"},
            )
    clock.advance(10_000)
    doc = cleanup(client)
    assert doc["events"]["delete_count"] == 0 and doc["skipped_missing_timestamp"] == 3
    assert doc["results"]["delete_count"] == 1


def test_jobs_ttl_deletes_a_terminal_job_with_everything_of_it(
    clock, monkeypatch, tmp_path, request
):
    monkeypatch.setenv("ASYNCJOBS_RESULT_INLINE_BYTES", "10")
    client = request.getfixturevalue("client")  # a Client reads the setting when made
    done = client.submit(
        "report", org="acme", payload={"size": 100}, sync=True, tasks=tasks
    )
    files = list((tmp_path / "artifacts" / "results" / "acme").glob("*.json"))
    assert len(files) == 1
    clock.advance(90_000)
    doc = cleanup(client, jobs_ttl_seconds=86_400, notifications_ttl_seconds=86_400)
    assert doc["jobs"]["deleted_ids"] == [done.job_id]
    assert (
        doc["notifications"]["delete_count"] == 1 and doc["events"]["delete_count"] == 3
    )
    assert ids_of(client, "jobs") == ids_of(client, "results") == set()
    assert not files[0].exists()
    assert client.check().ok


def test_pruned_notifications_do_not_count_as_missing(client, clock):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    clock.advance(90_000)
    doc = cleanup(client, notifications_ttl_seconds=86_400)
    assert doc["notifications"]["delete_count"] == 1
    assert client.check().ok
    assert client.stats()["terminal_without_notification"] == []


def test_a_dry_run_changes_nothing_and_is_byte_identical_twice(
    client, clock, cli, store_url, store_path, tmp_path
):
    for _ in range(3):
        client.submit("report", org="acme", sync=True, tasks=tasks)
    client.compact()
    before = state_of(store_url, data_files(store_path))
    args = [
        "cleanup",
        "--results-ttl-seconds",
        "60",
        "--events-ttl-seconds",
        "60",
        "--dry-run",
        "--now",
        "2030-01-01T00:00:00Z",
    ]
    first = cli(*args, "--output-json", str(tmp_path / "a" / "dry.json"))
    second = cli(*args, "--output-json", str(tmp_path / "b" / "dry.json"))
    assert first.exit_code == second.exit_code == 0 and first.stdout == ""
    assert (tmp_path / "a" / "dry.json").read_bytes() == (
        tmp_path / "b" / "dry.json"
    ).read_bytes()
    assert state_of(store_url, data_files(store_path)) == before
    doc = json.loads((tmp_path / "a" / "dry.json").read_text())
    assert doc["schema"] == "asyncjobs.retention.v1" and doc["dry_run"] is True
    assert (
        doc["store_file"] == store_url and doc["now"] == "2030-01-01T00:00:00.000000Z"
    )
    for kind in ("results", "events", "notifications", "jobs"):
        assert set(doc[kind]) == {"delete_count", "kept_count", "deleted_ids"}
        assert doc[kind]["deleted_ids"] == sorted(doc[kind]["deleted_ids"])
        assert doc[kind]["delete_count"] == len(doc[kind]["deleted_ids"])
    assert doc["results"]["delete_count"] == 3 and doc["events"]["delete_count"] == 9
    assert (tmp_path / "a" / "dry.json").stat().st_mode & 0o777 == 0o600


def test_a_live_run_then_a_second_deletes_nothing(client, cli):
    for _ in range(2):
        client.submit("report", org="acme", sync=True, tasks=tasks)
    args = [
        "cleanup",
        "--results-ttl-seconds",
        "0",
        "--events-ttl-seconds",
        "0",
        "--now",
        "2030-01-01T00:00:00Z",
    ]
    first = json.loads(cli(*args).stdout)
    second = json.loads(cli(*args).stdout)
    assert first["results"]["delete_count"] == 2 and first["dry_run"] is False
    assert all(
        second[k]["delete_count"] == 0
        for k in ("results", "events", "notifications", "jobs")
    )
    assert second["results"]["kept_count"] == 0
    assert cli("store", "check").exit_code == 0


def test_counters_stay_after_cleanup_deletes_jobs(client, clock):
    for _ in range(3):
        client.submit("report", org="acme", sync=True, tasks=tasks)
    clock.advance(100_000)
    cleanup(client, jobs_ttl_seconds=1)
    stats = client.stats()
    assert (
        stats["counters"]["jobs_completed_total"] == 3
        and stats["duration"]["count"] == 3
    )
    assert stats["by_status_queue"] == {}


def test_outputs_through_a_planted_symlink_replace_the_link_not_the_victim(
    client, cli, tmp_path
):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("out.json", "metrics.prom"):
        (tmp_path / name).symlink_to(victim)
    outcome = cli(
        "cleanup",
        "--results-ttl-seconds",
        "1",
        "--events-ttl-seconds",
        "1",
        "--dry-run",
        "--output-json",
        str(tmp_path / "out.json"),
        "--metrics-file",
        str(tmp_path / "metrics.prom"),
    )
    assert outcome.exit_code == 0
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.json").is_symlink()
    assert json.loads((tmp_path / "out.json").read_text())["dry_run"] is True


def test_the_metrics_file_reports_the_outcome_even_on_failure(
    client, cli, tmp_path, store_url, store_path
):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    metrics = tmp_path / "textfile" / "retention.prom"
    ok = zero_ttl_cleanup(
        cli,
        "--now",
        "2030-01-01T00:00:00Z",
        "--metrics-file",
        str(metrics),
    )
    assert ok.exit_code == 0
    text = metrics.read_text()
    assert 'async_retention_cleanup_exit_code{mode="live"} 0' in text
    assert 'async_retention_results_delete_count{mode="live"} 1' in text
    assert 'async_retention_events_delete_count{mode="live"} 3' in text
    make_unreadable(store_url, store_path)
    failed = zero_ttl_cleanup(
        cli,
        "--metrics-file",
        str(metrics),
    )
    assert failed.exit_code == 5 and failed.stderr.count("\n") == 1
    assert 'async_retention_cleanup_exit_code{mode="live"} 5' in metrics.read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--events-ttl-seconds", "1"], "Missing option '--results-ttl-seconds'"),
        (
            ["--results-ttl-seconds", "-1", "--events-ttl-seconds", "1"],
            "'--results-ttl-seconds': -1 is not a whole number of seconds",
        ),
        (
            [
                "--results-ttl-seconds",
                "1",
                "--events-ttl-seconds",
                "1",
                "--now",
                "soon",
            ],
            "not an ISO 8601",
        ),
    ],
)
def test_bad_cleanup_flags_exit_2_and_change_nothing(
    client, cli, store_url, store_path, args, words
):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    before = state_of(store_url, data_files(store_path))
    outcome = cli("cleanup", *args)
    assert outcome.exit_code == 2 and words in outcome.stderr
    assert state_of(store_url, data_files(store_path)) == before


@pytest.mark.jsonfile  # the JSON file's own files
@pytest.mark.parametrize("option", ["--output-json", "--metrics-file"])
@pytest.mark.parametrize(
    "target", ["snapshot", "journal", "lock", "temp file", "link to the journal"]
)
def test_an_artifact_path_that_is_a_store_file_is_refused_before_anything_is_deleted(
    client, cli, store_path, tmp_path, option, target
):
    for _ in range(2):
        client.submit("report", org="acme", sync=True, tasks=tasks)
    client.compact()
    client.submit("report", org="acme", sync=True, tasks=tasks)  # a journal line
    link = tmp_path / "innocent.json"
    link.symlink_to(Path(f"{store_path}.journal"))
    path = {
        "snapshot": store_path,
        "journal": Path(f"{store_path}.journal"),
        "lock": Path(f"{store_path}.lock"),
        "temp file": store_path.parent / f".{store_path.name}.k3x9q1.tmp",
        "link to the journal": link,
    }[target]
    before = sha256_of(*store_files(store_path))
    outcome = zero_ttl_cleanup(
        cli,
        "--now",
        "2030-01-01T00:00:00Z",
        option,
        str(path),
    )
    assert outcome.exit_code == 2 and outcome.stdout == "", outcome
    assert outcome.stderr.count("\n") == 1 and f"{option}: {path} is" in outcome.stderr
    assert sha256_of(*store_files(store_path)) == before
    assert len(ids_of(client, "results")) == 3


def test_the_report_and_the_metrics_may_not_share_a_file(
    client, cli, store_url, store_path, tmp_path
):
    client.submit("report", org="acme", sync=True, tasks=tasks)
    before = state_of(store_url, store_files(store_path))
    same = tmp_path / "out" / "cleanup.txt"
    outcome = zero_ttl_cleanup(
        cli,
        "--output-json",
        str(same),
        "--metrics-file",
        str(tmp_path / "out" / "." / "cleanup.txt"),
    )
    assert outcome.exit_code == 2 and "--metrics-file: " in outcome.stderr
    assert state_of(store_url, store_files(store_path)) == before
    assert not same.exists()


def unwritable(tmp_path: Path, how: str) -> Path:
    """A path no write can take, even as root."""
    if how == "a folder":
        (tmp_path / "taken").mkdir()
        return tmp_path / "taken"
    (tmp_path / "plain").write_text("a file, not a folder")
    return tmp_path / "plain" / "retention.json"  # its parent is a regular file


@pytest.mark.parametrize("how", ["a folder", "under a file"])
@pytest.mark.parametrize("option", ["--output-json", "--metrics-file"])
def test_an_artifact_that_cannot_be_written_is_refused_before_anything_is_deleted(
    client, cli, store_url, store_path, tmp_path, option, how
):
    for _ in range(2):
        client.submit("report", org="acme", sync=True, tasks=tasks)
    before = state_of(store_url, store_files(store_path))
    path = unwritable(tmp_path, how)
    outcome = zero_ttl_cleanup(
        cli,
        "--now",
        "2030-01-01T00:00:00Z",
        option,
        str(path),
    )
    assert outcome.exit_code == 2 and outcome.stdout == "", outcome
    assert outcome.stderr.count("\n") == 1 and f"{option}: " in outcome.stderr
    assert str(path) in outcome.stderr
    assert state_of(store_url, store_files(store_path)) == before
    assert len(ids_of(client, "results")) == 2


def test_records_of_workers_not_seen_for_a_week_are_pruned_and_reported(
    client, clock, cli, tmp_path
):
    def worker(name: str) -> WorkerInfo:
        stamp = to_iso(clock())
        return WorkerInfo(
            worker_id=f"wrk_{name}",
            host="here",
            pid=1,
            queues=["default"],
            concurrency=1,
            started_at=stamp,
            last_seen_at=stamp,
            heartbeat_seconds=10.0,
            lease_seconds=30.0,
        )

    client.register_worker(worker("old"))
    clock.advance(7 * 86400 + 1)
    client.register_worker(worker("new"))
    now = to_iso(clock())
    dry = zero_ttl_cleanup(cli, "--now", now, "--dry-run")
    assert json.loads(dry.stdout)["workers"] == {
        "delete_count": 1,
        "kept_count": 1,
        "deleted_ids": ["wrk_old"],
    }
    assert [w["worker_id"] for w in client.workers()] == ["wrk_new", "wrk_old"]
    metrics = tmp_path / "cleanup.prom"
    live = zero_ttl_cleanup(cli, "--now", now, "--metrics-file", str(metrics))
    assert json.loads(live.stdout)["workers"]["deleted_ids"] == ["wrk_old"]
    assert [w["worker_id"] for w in client.workers()] == ["wrk_new"]
    assert 'async_retention_workers_delete_count{mode="live"} 1' in metrics.read_text()
    later = to_iso(clock.advance(1))
    last = zero_ttl_cleanup(cli, "--now", later, "--workers-ttl-seconds", "0")
    assert json.loads(last.stdout)["workers"]["deleted_ids"] == ["wrk_new"]

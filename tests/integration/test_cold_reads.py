"""One-shot reads of the JSON file that look up their records instead of loading it all.

`status`, `result` and `events` run as a process of their own find the job's
records in the snapshot's sections and apply the journal lines after it
(store/jsonfile/cold.py). Each test compares such a process with a whole
load of the same store (the in-process command, which loads it all), or
checks what a damaged or older file makes it do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.domain.lifecycle import Token

from .test_claiming import make_worker

pytestmark = pytest.mark.jsonfile


def run_jobs(client: Client, outcomes: list[dict]) -> list[str]:
    """Claim one job per outcome and commit each: the ids, in claim order."""
    worker = make_worker(client)
    _, claimed = client.exchange(worker, [], want=len(outcomes), registry=None)
    reported: list[tuple[Token, dict]] = []
    for (job, token), outcome in zip(claimed, outcomes):
        reported.append((token, {"job_id": job.job_id, **outcome}))
    client.exchange(worker, reported, want=0, registry=None)
    return [job.job_id for job, _ in claimed]


@pytest.fixture
def busy_store(client: Client) -> dict[str, str]:
    """Jobs, results, events and notifications, in the snapshot and in the journal."""
    client.submit_many(
        [
            {"task": "reports.build", "org": "acme", "payload": {"n": n}}
            for n in range(6)
        ]
    )
    done, failed, *_ = run_jobs(
        client,
        [
            {"ok": True, "value": {"rows": 3}},
            {"ok": False, "error": {"type": "ValueError", "message": "no"}},
        ],
    )
    client.submit("reports.build", org="other", payload={"secret": "canary"})
    client.compact()  # what came before is in the snapshot, the rest in the journal
    retried = client.retry(done, org="acme")  # a second run of the completed job
    rerun = run_jobs(client, [{"ok": True, "value": {"rows": 4}}] * 8)
    assert retried.job_id in rerun
    client.cancel(client.submit("reports.build", org="acme").job_id, org="acme")
    other = client.list_jobs(org="other")[0].job_id
    return {"done": done, "failed": failed, "other": other}


def test_status_result_and_events_read_cold_say_what_a_whole_load_says(
    busy_store, console, cli
):
    done = busy_store["done"]
    result_id = json.loads(cli("status", done, "--org", "acme", "--json").stdout)[
        "result_id"
    ]
    asked = [
        ["status", done, "--org", "acme", "--json"],
        ["status", busy_store["failed"], "--org", "acme", "--json"],
        ["events", done, "--org", "acme", "--json"],
        ["result", result_id, "--org", "acme", "--json"],
        ["result", result_id, "--org", "acme", "--view", "pinned", "--json"],
    ]
    for args in asked:
        cold, whole = console(*args), cli(*args)
        assert cold.exit_code == whole.exit_code == 0, (args, cold.stderr)
        assert json.loads(cold.stdout) == json.loads(whole.stdout), args


def test_another_orgs_job_read_cold_is_answered_as_a_missing_one(busy_store, console):
    other = console("status", busy_store["other"], "--org", "acme")
    missing = console("status", "job_01M8NJM6GH0000000000000000", "--org", "acme")
    assert other.exit_code == missing.exit_code == 3
    assert other.stderr.replace(busy_store["other"], "ID") == missing.stderr.replace(
        "job_01M8NJM6GH0000000000000000", "ID"
    )
    assert "canary" not in other.stdout + other.stderr


def test_a_job_deleted_after_the_snapshot_is_not_found_cold(
    client, busy_store, console
):
    client.compact()
    report = client.cleanup(
        results_ttl_seconds=0,
        events_ttl_seconds=0,
        notifications_ttl_seconds=0,
        jobs_ttl_seconds=0,
        now="2100-01-01T00:00:00Z",
    )
    assert busy_store["failed"] in report["jobs"]["deleted_ids"]
    outcome = console("status", busy_store["failed"], "--org", "acme")
    assert outcome.exit_code == 3 and "not found" in outcome.stderr
    outcome = console("events", busy_store["failed"], "--org", "acme")
    assert outcome.exit_code == 3


def test_a_snapshot_of_the_older_layout_is_read_whole(
    busy_store, store_path: Path, console, cli
):
    doc = json.loads(store_path.read_bytes())
    del doc["sections"]
    store_path.write_bytes(json.dumps(doc, separators=(",", ":")).encode())
    args = ["events", busy_store["done"], "--org", "acme", "--json"]
    cold, whole = console(*args), cli(*args)
    assert cold.exit_code == 0 and json.loads(cold.stdout) == json.loads(whole.stdout)


def test_a_flipped_byte_in_a_section_it_reads_stops_the_read(
    busy_store, store_path: Path, console
):
    raw = store_path.read_bytes()
    at = raw.index(b'"payload":{"n":4}')
    store_path.write_bytes(raw[:at] + raw[at:].replace(b'{"n":4}', b'{"n":5}', 1))
    outcome = console("status", busy_store["done"], "--org", "acme")
    assert outcome.exit_code == 5 and outcome.stderr.count("\n") == 1
    assert f"{store_path}: the jobs section fails its checksum" in outcome.stderr
    assert console("store", "check").exit_code == 5


def test_a_one_shot_read_checks_only_the_sections_it_reads(
    busy_store, store_path: Path, console
):
    """`store check` (and any command that loads the store whole) checks them all."""
    raw = store_path.read_bytes()
    at = raw.index(b'"channel":"in_app"', raw.index(b'"notifications":{'))
    store_path.write_bytes(raw[:at] + b'"channel":"in_bpp"' + raw[at + 18 :])
    assert console("status", busy_store["done"], "--org", "acme").exit_code == 0
    check = console("store", "check")
    assert check.exit_code == 5
    assert "the notifications section fails its checksum" in check.stderr
    assert console("jobs", "--org", "acme").exit_code == 5


def test_a_kind_parsed_on_first_use_has_what_others_committed_since(store_path):
    """A process parses each kind of the snapshot when it first reads it; what
    other processes committed to that kind meanwhile is there too."""
    with Client(store_path) as first:
        first.init_store()
        job, kept = first.submit_many(
            [{"task": "reports.build", "org": "acme"} for _ in range(2)]
        )
        first.compact()
    with Client(store_path) as reader, Client(store_path) as writer:
        assert reader.get_job(job.job_id, org="acme").status == "queued"
        writer.cancel(job.job_id, org="acme")
        assert [e.event_type for e in reader.events(job.job_id, org="acme")] == [
            "async.job.queued",
            "async.job.canceled",
        ]
        writer.cleanup(
            results_ttl_seconds=0, events_ttl_seconds=0, now="2100-01-01T00:00:00Z"
        )
        writer.cancel(kept.job_id, org="acme")
    with Client(store_path) as reader:
        assert reader.get_job(job.job_id, org="acme").status == "canceled"
        assert reader.events(job.job_id, org="acme") == []
        assert len(reader.events(kept.job_id, org="acme")) == 2


def test_a_compaction_copies_the_kinds_it_never_parsed_and_keeps_every_record(
    busy_store, store_path: Path
):
    with Client(store_path) as client:
        before = client.export()
    with Client(store_path) as client:  # reads and writes jobs only, then folds
        client.submit("reports.build", org="acme")
        client.compact()
    with Client(store_path) as client:
        after = client.export()
        assert client.check(strict=True).ok
    for kind in ("results", "events", "notifications"):
        assert set(before[kind]) <= set(after[kind])
        assert all(after[kind][key] == record for key, record in before[kind].items())
    assert len(after["jobs"]) == len(before["jobs"]) + 1

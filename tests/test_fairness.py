"""Stores that older versions wrote, and the records of fair tags, under store check."""

from __future__ import annotations

from asyncjobs import Client
from asyncjobs.tasks import TaskRegistry

from .test_claiming import make_worker

tasks = TaskRegistry()


@tasks.task(name="f")
def f() -> None: ...


def test_a_store_an_older_version_wrote_checks_claims_and_cleans_up(
    store_path, clock, cli
):
    """Turn rows (``orgs``), a ``claims_total`` counter and queued jobs without tags."""
    from asyncjobs import lifecycle
    from asyncjobs.store import JsonFileStore

    with JsonFileStore(store_path) as store:
        store.initialize()
        with store.transaction() as tx:
            for n, org in enumerate(["flood"] * 20 + ["small"]):
                job, event = lifecycle.submit(
                    task="f",
                    org=org,
                    payload={},
                    queue="default",
                    priority=5,
                    run_after=clock.moment,
                    idempotency_key=None,
                    max_retries=None,
                    now=clock.moment,
                )
                record = job.to_dict()
                del record["fair_tag"]
                record["created_at"] = record["run_after"] = (
                    f"2026-11-01T11:00:{n:02d}Z"
                )
                tx.put("jobs", job.job_id, record)
                tx.put("events", event.event_id, event.to_dict())
            tx.put(
                "orgs",
                "flood",
                {"org_id": "flood", "last_served_at": "", "last_served_turn": 7},
            )
            tx.put("counters", "claims_total", {"name": "claims_total", "value": 7})
    checked = cli("store", "check", "--strict", "--json")
    assert checked.exit_code == 0, checked.stdout
    assert "'orgs' record(s) of an older version" in checked.stdout
    with Client(store_path, clock=clock) as client:
        worker = make_worker(client)
        _, claimed = client.exchange(worker, [], want=2, registry=tasks)
        assert [job.org_id for job, _ in claimed] == ["flood", "small"]
        ((job, token), _) = claimed
        done = {"job_id": job.job_id, "ok": True, "value": 1}
        client.exchange(worker, [(token, done)], want=0, registry=tasks)
        clock.advance(10)
        report = client.cleanup(
            results_ttl_seconds=0, events_ttl_seconds=0, jobs_ttl_seconds=0
        )
        assert report["jobs"]["deleted_ids"] == [job.job_id]
        assert client.export()["orgs"] == {
            "flood": {"org_id": "flood", "last_served_at": "", "last_served_turn": 7}
        }
        assert client.check(strict=True).ok


def test_store_check_reports_a_malformed_lanes_record(client, cli):
    client.submit("f", org="acme")
    assert cli("store", "check").exit_code == 0
    with client.store.transaction() as tx:
        tx.put("lanes", "default/5/acme", {"queue": "default", "next_tag": "1"})
    checked = cli("store", "check")
    assert checked.exit_code != 0
    assert "a lanes record is malformed" in checked.stdout + checked.stderr

"""Client.schedules: the slots the beat enqueued and the next runs, read from a real
store, with an app or from the task catalog (the slot rules themselves are checked in
tests/unit/test_schedules.py)."""

from __future__ import annotations

import pytest

from asyncjobs import TaskRegistry
from asyncjobs.records import WorkerInfo

from ..unit.test_schedules import at

pytestmark = pytest.mark.engines


def app() -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.periodic(name="tick", every=60, org="ops")(lambda: None)
    tasks.periodic(name="nightly", cron="30 2 * * *")(lambda: None)
    return tasks


def test_schedules_show_the_slots_the_beat_enqueued(client, clock):
    tasks = app()
    assert [j.task for j in client.enqueue_periodic(tasks)] == ["tick"]  # 12:00
    clock.advance(90)
    client.enqueue_periodic(tasks)  # 12:01
    client.submit("tick", org="other", idempotency_key="periodic:tick:2027")
    found = {row["name"]: row for row in client.schedules(app=tasks)}
    assert found["tick"]["last_slot_at"] == "2026-11-01T12:01:00.000000Z"
    assert found["tick"]["next_run_at"] == "2026-11-01T12:02:00.000000Z"
    assert found["nightly"]["last_slot_at"] is None
    assert found["nightly"]["next_run_at"] == "2026-11-02T02:30:00.000000Z"
    later = client.schedules(app=tasks, now=at("2026-11-02 02:30"))
    assert [r["next_run_at"] for r in later] == [
        "2026-11-03T02:30:00.000000Z",
        "2026-11-02T02:31:00.000000Z",
    ]


def test_without_an_app_and_without_a_catalog_there_is_nothing_to_show(client):
    client.enqueue_periodic(app())
    assert client.schedules() == []


def test_without_an_app_schedules_read_the_task_catalog(client, clock):
    # What a worker of that app publishes when it starts (Worker.run).
    stamp = "2026-11-01T12:00:00.000000Z"
    starting = WorkerInfo(
        worker_id="wrk_beat",
        host="here",
        pid=1,
        queues=["default"],
        concurrency=1,
        started_at=stamp,
        last_seen_at=stamp,
        heartbeat_seconds=10.0,
        lease_seconds=30.0,
    )
    client.register_worker(starting, tasks=app())
    client.enqueue_periodic(app())
    found = client.schedules()
    assert found == client.schedules(app=app())
    assert [r["name"] for r in found] == ["nightly", "tick"]
    assert found[1]["last_slot_at"] == "2026-11-01T12:00:00.000000Z"

"""Retry schedules as a real worker keeps them: each listed delay is waited, never cut
short (the rule itself is checked in tests/unit/test_retry_schedules.py)."""

from __future__ import annotations

from datetime import timedelta

from asyncjobs import clock as clocks

from . import test_worker

# The real-worker fixtures of the worker tests.
burst = test_worker.burst  # env and runs_file come from conftest.py


def test_a_worker_waits_each_listed_delay_before_the_next_attempt(client, burst):
    job = client.submit("stepped", org="acme")
    for _ in range(100):  # a burst exits while a retry is not due; the next runs it
        burst()
        if client.get_job(job.job_id, org="acme").status != "queued":
            break
    failed = client.get_job(job.job_id, org="acme")
    assert failed.status == "failed" and failed.attempts == 4  # max_retries=3
    events = client.events(job.job_id, org="acme")
    scheduled = [e for e in events if e.event_type == "async.job.retry_scheduled"]
    started = [e for e in events if e.event_type == "async.job.started"]
    assert [e.data["delay_seconds"] for e in scheduled] == [0.2, 0.5, 0.5]
    for retry, wait, next_start in zip(scheduled, (0.2, 0.5, 0.5), started[1:]):
        at = clocks.parse_iso(retry.created_at)
        assert retry.data["run_after"] == clocks.to_iso(at + timedelta(seconds=wait))
        assert next_start.created_at >= retry.data["run_after"]  # never early
    assert failed.run_after == scheduled[-1].data["run_after"]

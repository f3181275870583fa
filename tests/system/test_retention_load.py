"""Live cleanups while submitters and workers run.

Two submitter processes and two workers keep the store busy while this
test runs eight live cleanups with 1-second TTLs. Just before each one it
exports the store. Every id a cleanup deletes must be a record that existed
then, older than its TTL at the cleanup's ``now``, of a job that had already
finished (no job is retried here, so a finished job stays finished); the
counts must equal the ids listed; and the ``*_total`` counters, sampled all
along, never go down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.clock import parse_iso, to_iso

from ..injection import worker_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
HELPERS = Path(__file__).parents[1] / "helpers"
TTL = 1.0
KEYS = {
    "results": "result_id",
    "events": "event_id",
    "notifications": "notification_id",
}


def test_cleanups_under_load_delete_only_old_records_of_finished_jobs(tmp_path):
    store = tmp_path / "store.v1.json"
    env = {**os.environ, "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}"}
    go = tmp_path / "go"
    submitters = [
        subprocess.Popen(
            [sys.executable, str(HELPERS / "barrier_submitter.py"), str(store), str(go)]
            + [f"org-{n}", "1500"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for n in range(2)
    ]
    go.touch()
    workers = [worker_process(store, env) for _ in range(2)]
    deleted_total = 0
    counters_seen: dict[str, int] = {}
    try:
        with Client(store) as client:
            for _ in range(8):
                time.sleep(0.6)
                before = client.export()
                for counter in before.get("counters", {}).values():
                    if "value" in counter:
                        name, value = counter["name"], counter["value"]
                        assert value >= counters_seen.get(name, 0), name
                        counters_seen[name] = value
                report = client.cleanup(
                    results_ttl_seconds=TTL,
                    events_ttl_seconds=TTL,
                    notifications_ttl_seconds=TTL,
                )
                now = parse_iso(report["now"])
                cutoff = to_iso(now - timedelta(seconds=TTL))
                finished = {
                    job_id: job.get("finished_at")
                    for job_id, job in client.export()["jobs"].items()
                }
                for kind, key in KEYS.items():
                    ids = report[kind]["deleted_ids"]
                    assert report[kind]["delete_count"] == len(ids)
                    deleted_total += len(ids)
                    for record_id in ids:
                        record = before[kind][record_id]  # it existed just before
                        assert record["created_at"] < cutoff, (kind, record_id)
                        done_at = finished[record["job_id"]]
                        assert done_at is not None and done_at <= report["now"]
                assert report["jobs"]["delete_count"] == 0
    finally:
        for proc in submitters:
            proc.kill()
            proc.wait()
        for proc in workers:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert deleted_total > 0  # the cleanups really had something to do
    with Client(store) as client:
        assert client.check(strict=True).ok

"""S9 and S11 with a history checker (RELIABILITY.md, T6): workers killed and paused at random.

3,000 short jobs, 3 workers (concurrency 2, lease 2 s). A nemesis picks a
worker every 1 to 2.5 s and either SIGKILLs its process group and starts a
new one, or SIGSTOPs it for longer than the lease and then lets it go on
(its stale outcomes must be refused: fencing). Each run of a task appends
``<job> <attempt> <pid> start|end <time>`` to a history file. After the
drain, the checker compares the history with the store:

- lost: submitted jobs that are not completed (must be 0);
- unexpected: runs of job ids never submitted (must be 0);
- overlaps: two runs of one job under the same attempt, that is under one
  lease (must be 0);
- stale commits: a result, completion or notification written for an
  attempt that is not the job's last (must be 0);
- duplicated: runs beyond one per job, each one explained by a recorded
  lease expiry of that job (reported, and bounded by the expiries).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from asyncjobs import Client

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).parent / "apps"
JOBS = int(os.environ.get("ASYNCJOBS_CHAOS_JOBS", "3000"))
LEASE = 2.0


def start_worker(store: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asyncjobs",
            "--store",
            str(store),
            "worker",
            "--app",
            "jobsapp:tasks",
            "-c",
            "2",
            "--lease-seconds",
            str(LEASE),
            "--poll-seconds",
            "0.05",
            "--log-level",
            "error",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_killed_and_paused_workers_lose_no_job_and_commit_nothing_stale(tmp_path):
    rng = random.Random(20261123)
    store, history = tmp_path / "store.v1.json", tmp_path / "history.log"
    env = {
        **os.environ,
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(history),
    }
    with Client(store) as client:
        submitted = {
            job.job_id
            for start in range(0, JOBS, 500)
            for job in client.submit_many(
                [
                    {
                        "task": "chaos",
                        "org": f"org{i % 3}",
                        "payload": {"ms": rng.randint(0, 120)},
                    }
                    for i in range(start, min(JOBS, start + 500))
                ]
            )
        }

        def terminal() -> int:
            with client._store.read() as tx:
                return sum(
                    1 for j in tx.scan("jobs") if j["status"] in ("completed", "failed")
                )

        workers = [start_worker(store, env) for _ in range(3)]
        kills = pauses = 0
        deadline = time.monotonic() + 170
        try:
            while terminal() < JOBS:
                assert time.monotonic() < deadline, f"{terminal()} of {JOBS} done"
                time.sleep(rng.uniform(1.0, 2.5))
                n = rng.randrange(len(workers))
                if rng.random() < 0.7:
                    os.killpg(workers[n].pid, signal.SIGKILL)
                    workers[n].wait()
                    workers[n] = start_worker(store, env)
                    kills += 1
                else:
                    os.killpg(workers[n].pid, signal.SIGSTOP)
                    time.sleep(LEASE + 1.0)  # its leases expire meanwhile
                    os.killpg(workers[n].pid, signal.SIGCONT)
                    pauses += 1
        finally:
            for worker in workers:
                try:
                    os.killpg(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for worker in workers:
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()

        assert client.check(strict=True).ok
        with client._store.read() as tx:
            jobs = {j["job_id"]: j for j in tx.scan("jobs")}
            results = defaultdict(list)
            for r in tx.scan("results"):
                results[r["job_id"]].append(r)
            notifications = Counter(n["job_id"] for n in tx.scan("notifications"))
            events = defaultdict(Counter)
            for e in tx.scan("events"):
                events[e["job_id"]][e["event_type"]] += 1

    runs = [line.split() for line in history.read_text().splitlines()]
    starts = Counter(job_id for job_id, _, _, what, _ in runs if what == "start")
    attempts = Counter((job_id, a) for job_id, a, _, what, _ in runs if what == "start")
    lost = [j for j in submitted if jobs[j]["status"] != "completed"]
    unexpected = set(starts) - submitted
    overlaps = [key for key, count in attempts.items() if count > 1]
    stale = [
        j
        for j in submitted
        if len(results[j]) != 1
        or results[j][0]["attempt"] != jobs[j]["attempts"]
        or notifications[j] != 1
        or events[j]["async.job.completed"] != 1
    ]
    duplicated = sum(starts.values()) - len(starts)
    expiries = sum(events[j]["async.job.lease_expired"] for j in submitted)
    refused = sum(events[j]["async.job.stale_outcome_refused"] for j in submitted)
    unexplained = [
        j for j in submitted if starts[j] - 1 > events[j]["async.job.lease_expired"]
    ]
    print(
        f"chaos: {JOBS} jobs, {kills} kills, {pauses} pauses; "
        f"attempts {sum(starts.values())}, acknowledged {len(submitted)}, "
        f"lost {len(lost)}, unexpected {len(unexpected)}, duplicated {duplicated}, "
        f"recovered {expiries}, lease overlaps {len(overlaps)}, "
        f"stale commits {len(stale)}, stale outcomes refused {refused}"
    )
    assert kills >= 5 and pauses >= 2
    assert not lost and not unexpected and not overlaps and not stale
    assert not unexplained, unexplained[:5]
    assert not [j for j in jobs.values() if j["status"] == "running"]

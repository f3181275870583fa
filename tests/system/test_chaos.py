"""Workers killed and paused at random, every run checked against a history.

3,000 short jobs, 3 workers (concurrency 2, lease 2 s). A nemesis picks a
worker every 1 to 2.5 s and either SIGKILLs its process group and starts a
new one, or SIGSTOPs it for longer than the lease and then lets it go on
(its stale outcomes must be refused: fencing), or has a rogue process hold
the store lock for longer than the lease (no heartbeat gets through). Each run of a task appends
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
import shutil
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.clock import parse_iso

from ..injection import asyncjobs_cmd, helper_process, worker_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
JOBS = int(os.environ.get("ASYNCJOBS_CHAOS_JOBS", "3000"))
SOAK_JOBS = int(os.environ.get("ASYNCJOBS_SOAK_JOBS", "2000"))
HELPERS = Path(__file__).parents[1] / "helpers"
LEASE = 2.0


def start_worker(store: Path, env: dict[str, str]) -> subprocess.Popen:
    return worker_process(store, env, "-c", "2", "--lease-seconds", str(LEASE))


def chaos_run(tmp_path: Path, *, jobs: int, load: bool) -> dict:
    """Run the nemesis over workers (and, with ``load``, everything else); check."""
    rng = random.Random(20261123)
    store, history = tmp_path / "store.v1.json", tmp_path / "history.log"
    go, stop = tmp_path / "go", tmp_path / "stop"
    env = {
        **os.environ,
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(history),
    }
    started = time.monotonic()
    with Client(store) as client:
        submitted = {
            job.job_id
            for start in range(0, jobs, 500)
            for job in client.submit_many(
                [
                    {
                        "task": "chaos",
                        "org": f"org{i % 3}",
                        "payload": {"ms": rng.randint(0, 120)},
                    }
                    for i in range(start, min(jobs, start + 500))
                ]
            )
        }
        others: list[subprocess.Popen] = []
        submitters: list[subprocess.Popen] = []
        if load:  # submitters, a folder, an auditor and readers alongside
            submitters = [
                helper_process(
                    env,
                    str(HELPERS / "barrier_submitter.py"),
                    str(store),
                    str(go),
                    f"live{n}",
                    "500",
                    "chaos",
                )
                for n in range(2)
            ]
            # Folds and audits at an operator's pace: a fold makes every
            # process re-read the snapshot, so a tight loop of them would
            # measure little else.
            others = [
                helper_process(
                    env, str(HELPERS / "busy.py"), str(store), str(stop), *role
                )
                for role in (
                    ("compactor", "2"),
                    ("auditor", "2"),
                    ("reader", "0.01"),
                    ("reader", "0.01"),
                )
            ]
            go.touch()

        def unfinished() -> int:
            return sum(
                1
                for j in client.export()["jobs"].values()
                if j["status"] not in ("completed", "failed")
            )

        workers = [start_worker(store, env) for _ in range(3)]
        kills = pauses = lock_holds = 0
        deadline = time.monotonic() + 170
        try:
            while unfinished() or any(p.poll() is None for p in submitters):
                assert time.monotonic() < deadline, f"{unfinished()} unfinished"
                time.sleep(rng.uniform(1.0, 2.5))
                n = rng.randrange(len(workers))
                roll = rng.random()
                if roll < 0.6:
                    os.killpg(workers[n].pid, signal.SIGKILL)
                    workers[n].wait()
                    workers[n] = start_worker(store, env)
                    kills += 1
                elif roll < 0.85:
                    os.killpg(workers[n].pid, signal.SIGSTOP)
                    time.sleep(LEASE + 1.0)  # its leases expire meanwhile
                    os.killpg(workers[n].pid, signal.SIGCONT)
                    pauses += 1
                else:
                    # A rogue process sits on the store lock past every lease:
                    # no heartbeat gets through, every running job's lease ends.
                    holder = helper_process(
                        env, str(HELPERS / "hold_lock.py"), f"{store}.lock"
                    )
                    assert holder.stdout.readline().strip() == "held"
                    time.sleep(LEASE + 1.0)
                    holder.kill()
                    holder.communicate()
                    lock_holds += 1
            for proc in submitters:
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err
                submitted |= set(out.split())
            stop.touch()
            for proc in others:
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err  # readers saw no generation go back
        finally:
            stop.touch()
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
            for proc in others + submitters:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        elapsed = time.monotonic() - started

        assert client.check(strict=True).ok
        state = client.export()  # one view of the whole state
        generation = state["generation"]
        jobs_by_id = {j["job_id"]: j for j in state["jobs"].values()}
        results = defaultdict(list)
        for r in state["results"].values():
            results[r["job_id"]].append(r)
        notifications = Counter(n["job_id"] for n in state["notifications"].values())
        events = defaultdict(Counter)
        first_start: dict[str, str] = {}
        for e in state["events"].values():
            events[e["job_id"]][e["event_type"]] += 1
            if e["event_type"] == "async.job.started":
                at = first_start.get(e["job_id"])
                first_start[e["job_id"]] = min(at or e["created_at"], e["created_at"])

    runs = [line.split() for line in history.read_text().splitlines()]
    starts = Counter(job_id for job_id, _, _, what, _ in runs if what == "start")
    attempts = Counter((job_id, a) for job_id, a, _, what, _ in runs if what == "start")
    waits = [
        (
            parse_iso(first_start[j]) - parse_iso(jobs_by_id[j]["created_at"])
        ).total_seconds()
        for j in submitted
        if j in first_start
    ]
    figures = {
        "jobs": len(submitted),
        "kills": kills,
        "pauses": pauses,
        "lock_holds": lock_holds,
        "attempts": sum(starts.values()),
        "acknowledged": len(submitted),
        "lost": sum(1 for j in submitted if jobs_by_id[j]["status"] != "completed"),
        "unexpected": len(set(starts) - submitted),
        "duplicated": sum(starts.values()) - len(starts),
        "recovered": sum(events[j]["async.job.lease_expired"] for j in submitted),
        "lease_overlaps": sum(1 for count in attempts.values() if count > 1),
        "stale_commits": sum(
            1
            for j in submitted
            if len(results[j]) != 1
            or results[j][0]["attempt"] != jobs_by_id[j]["attempts"]
            or notifications[j] != 1
            or events[j]["async.job.completed"] != 1
        ),
        "stale_outcomes_refused": sum(
            events[j]["async.job.stale_outcome_refused"] for j in submitted
        ),
        "unexplained_duplicates": sum(
            1 for j in submitted if starts[j] - 1 > events[j]["async.job.lease_expired"]
        ),
        "still_running": sum(
            1 for j in jobs_by_id.values() if j["status"] == "running"
        ),
        "max_queue_to_start_s": round(max(waits), 2),
        "commits_per_s": round(generation / elapsed, 1),
        "seconds": round(elapsed, 1),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    for name in ("lost", "unexpected", "lease_overlaps", "stale_commits"):
        assert figures[name] == 0, figures
    assert figures["unexplained_duplicates"] == 0 and figures["still_running"] == 0
    return figures


def test_killed_and_paused_workers_lose_no_job_and_commit_nothing_stale(tmp_path):
    figures = chaos_run(tmp_path, jobs=JOBS, load=False)
    assert figures["kills"] >= 5 and figures["pauses"] >= 2
    assert figures["lock_holds"] >= 1


def test_a_soak_with_every_kind_of_load_and_the_nemesis_keeps_every_promise(tmp_path):
    """The chaos run, plus live submitters, a folding loop, audits and readers."""
    figures = chaos_run(tmp_path, jobs=SOAK_JOBS, load=True)
    assert figures["jobs"] == SOAK_JOBS + 1000 and figures["kills"] >= 3


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime")
def test_workers_whose_clocks_disagree_take_no_live_lease(tmp_path):
    """The clock nemesis: one worker 30 s ahead, one 5 s behind, one on time.

    To the one ahead every lease of the others looks over, and the others
    see the one behind write leases that end in their past. Leases are
    still only taken once a worker has seen them unrenewed for a whole
    lease period, so each job runs once: no expiry, no stale outcome.
    """
    rng = random.Random(7)
    store, history = tmp_path / "store.v1.json", tmp_path / "history.log"
    env = {
        **os.environ,
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(history),
    }
    with Client(store) as client:
        client.init_store()
        worker = asyncjobs_cmd(store, "worker", "--app", "jobsapp:tasks")
        worker += ["--poll-seconds", "0.05", "-c", "2", "--lease-seconds", str(LEASE)]
        workers = [
            subprocess.Popen(
                [*skew, *worker],
                env=env,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for skew in ([], ["faketime", "-f", "+30s"], ["faketime", "-f", "-5s"])
        ]
        deadline = time.monotonic() + 120
        try:
            # All three are up before any job exists: one slow to start under
            # faketime on a loaded machine must not find the work all taken.
            while len(client.workers()) < 3:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            submitted = {
                job.job_id
                for job in client.submit_many(
                    [
                        {
                            "task": "chaos",
                            "org": "acme",
                            "payload": {"ms": rng.randint(0, 3000)},
                        }
                        for _ in range(60)
                    ]
                )
            }
            while True:
                jobs = client.export()["jobs"].values()
                if all(j["status"] == "completed" for j in jobs):
                    break
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            for proc in workers:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in workers:
                proc.wait(timeout=30)
        state = client.export()
        kinds = Counter(e["event_type"] for e in state["events"].values())
        ran = Counter(j["worker_id"] for j in state["jobs"].values())
    assert len(ran) == 3, ran  # each of the three took its share
    runs = [line.split() for line in history.read_text().splitlines()]
    starts = Counter(job_id for job_id, _, _, what, _ in runs if what == "start")
    assert set(starts) == submitted and set(starts.values()) == {1}
    assert kinds["async.job.lease_expired"] == 0
    assert kinds["async.job.stale_outcome_refused"] == 0

"""Many processes writing at once lose and duplicate nothing, and the test can tell.

One test runs 8 processes x 500 ``Client.submit`` calls to 2 orgs, started
at a barrier. Another proves the race is real: with the store lock off by the
test-only ``ASYNCJOBS_TEST_DISABLE_LOCK=1``, the same kind of run (counter
read-modify-write plus a record per commit) must fail 10 times out of 10,
and pass 10 out of 10 with the lock on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.store import JsonFileStore

from ..conftest import journal_lines
from ..injection import worker_process
from .test_http_served import fetch

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).parents[1] / "helpers"

# The tests taking store_url run on every engine; the others are the JSON file's.
pytestmark = [pytest.mark.slow, pytest.mark.engines]


def start(script: str, *args: str, env: dict[str, str] | None = None):
    return subprocess.Popen(
        [sys.executable, str(HELPERS / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def race(store: Path, go: Path, processes: int, commits: int, env=None) -> list[str]:
    """Run committers at once; return what went wrong (nothing, with the lock)."""
    store.parent.mkdir(exist_ok=True)
    procs = [
        start("committer.py", str(store), f"p{n}", str(commits), str(go), env=env)
        for n in range(processes)
    ]
    go.touch()
    problems, acknowledged = [], []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            problems.append(f"a committer failed: {err.strip().splitlines()[-1:]}")
        acknowledged += out.split()
    total = processes * commits
    # The committers write bare records (helpers/committer.py), no jobs a Client
    # would check: the race is the engine's, and so is this reading of it.
    try:
        with JsonFileStore(store) as s:
            verification = s.verify(strict=True)
            problems += verification.problems
            with s.read() as tx:
                keys = [r["job_id"] for r in tx.scan("jobs")]
                counter = (tx.get("counters", "commits") or {}).get("value")
                generation = tx.generation
    except Exception as exc:  # a store that no longer opens is the finding
        return [*problems, f"the store does not open: {exc}"]
    if sorted(keys) != sorted(acknowledged):
        problems.append(f"{len(set(acknowledged) - set(keys))} acknowledged keys lost")
    if counter != len(acknowledged) or (not problems and counter != total):
        problems.append(f"lost updates: counter {counter}, commits {len(acknowledged)}")
    if generation != len(acknowledged):
        problems.append(f"generation {generation} after {len(acknowledged)} commits")
    return problems


def test_the_lock_is_what_keeps_concurrent_commits_whole(tmp_path):
    off = {"ASYNCJOBS_TEST_DISABLE_LOCK": "1"}
    found_without, found_with = [], []
    for n in range(10):
        found_without.append(
            race(tmp_path / f"off{n}" / "s.json", tmp_path / f"go-off{n}", 6, 100, off)
        )
        found_with.append(
            race(tmp_path / f"on{n}" / "s.json", tmp_path / f"go-on{n}", 6, 100)
        )
    assert all(found_without), "a run without the lock showed no damage"
    assert not any(found_with), [p for p in found_with if p]


def test_eight_processes_submit_4000_jobs_with_none_lost_or_doubled(tmp_path):
    store = tmp_path / "store.v1.json"
    go = tmp_path / "go"
    procs = [
        start("barrier_submitter.py", str(store), str(go), f"org-{n % 2}", "500")
        for n in range(8)
    ]
    go.touch()
    returned: dict[str, list[str]] = {"org-0": [], "org-1": []}
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        returned[f"org-{n % 2}"] += out.split()
    with Client(store) as client:
        report = client.check(strict=True)
        assert report.ok, report.problems
        state = client.export()
        jobs = list(state["jobs"].values())
        generation = state["generation"]
    ids = [job["job_id"] for job in jobs]
    assert len(ids) == len(set(ids)) == 4000
    for org, got in returned.items():
        assert sorted(got) == sorted(j["job_id"] for j in jobs if j["org_id"] == org)
    # One commit per submit, every one either in the snapshot or a journal line.
    assert generation == 4000
    snapshot = json.loads(store.read_text())["generation"] if store.exists() else 0
    lines = journal_lines(store).splitlines()
    assert [json.loads(line[9:])["g"] for line in lines] == list(
        range(snapshot + 1, 4001)
    )


def test_a_server_taking_16_concurrent_posts_beside_two_workers_loses_nothing(
    server, store_url, tmp_path
):
    """The threaded server and worker processes commit to one store."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{Path(__file__).parents[1] / 'apps'}{os.pathsep}{ROOT}",
    }
    workers = [worker_process(store_url, env) for _ in range(2)]
    created: list[str] = []

    def post(n: int) -> None:
        for i in range(25):
            status, body = fetch(
                f"{server}/analyze/jobs",
                org=f"org{n % 2}",
                data=json.dumps({"task": "echo", "payload": {"i": i}}).encode(),
            )
            assert status == 202, body
            created.append(body["job_id"])

    try:
        threads = [threading.Thread(target=post, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with Client(store_url) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                jobs = client.export()["jobs"].values()
                statuses = Counter(j["status"] for j in jobs)
                if statuses["completed"] == len(created):
                    break
                time.sleep(0.05)
    finally:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert len(created) == len(set(created)) == 400
    with Client(store_url) as client:
        assert client.check(strict=True).ok
        state = client.export()
        jobs = {j["job_id"]: j for j in state["jobs"].values()}
        submitted_total = state["counters"]["jobs_submitted_total"]["value"]
    assert set(jobs) == set(created) and submitted_total == 400
    assert {j["status"] for j in jobs.values()} == {"completed"}


def test_eight_processes_racing_with_one_idempotency_key_make_one_job(
    store_url, tmp_path
):
    """Exactly one job; the seven others are told it was deduplicated.

    The JSON file is not there yet: the first commit makes it.
    """
    go = tmp_path / "go"
    procs = [
        start(
            "barrier_submitter.py",
            store_url,
            str(go),
            "acme",
            "1",
            env={"ASYNCJOBS_SUBMIT_KEY": "nightly-2026-11-23"},
        )
        for _ in range(8)
    ]
    go.touch()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answers.append(tuple(out.split()))
    assert len({job_id for job_id, _ in answers}) == 1
    assert sorted(flag for _, flag in answers) == ["False"] + ["True"] * 7
    with Client(store_url) as client:
        assert len(client.list_jobs(org="acme")) == 1


def test_a_long_job_with_heartbeats_is_never_stolen_on_starved_cores(tmp_path):
    """A 12 s job, a 3 s lease, both cores pinned by busy loops."""
    store = tmp_path / "store.v1.json"
    runs = tmp_path / "runs.log"
    env = {
        **os.environ,
        "PYTHONPATH": f"{Path(__file__).parents[1] / 'apps'}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(runs),
    }
    with Client(store) as client:
        job = client.submit("sleep", org="acme", payload={"seconds": 12})
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
    ]
    workers = [worker_process(store, env, "--lease-seconds", "3") for _ in range(2)]
    try:
        with Client(store) as client:
            deadline = time.monotonic() + 90
            while client.get_job(job.job_id, org="acme").status != "completed":
                assert time.monotonic() < deadline, "the long job did not finish"
                time.sleep(0.2)
            events = [e.event_type for e in client.events(job.job_id, org="acme")]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert "async.job.lease_expired" not in events
    assert [line.split()[3] for line in runs.read_text().splitlines()] == [
        "start",
        "end",
    ]

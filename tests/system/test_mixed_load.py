"""Submitters, workers, a compaction loop, a dry-run cleanup loop and readers at once.

Four submitters and two workers run beside a process that folds the journal
over and over, one that runs dry-run cleanups, and two readers, for a few
seconds. Readers never see the generation go back or fail to read; every
fold leaves a snapshot followed only by newer journal lines; then every
submitted job is completed exactly once, with one notification, and
``store check --strict`` passes.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from asyncjobs import Client

from ..injection import helper_process, worker_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parents[1] / "apps"
HELPERS = Path(__file__).parents[1] / "helpers"


def test_writers_workers_folds_audits_and_readers_together_lose_nothing(tmp_path):
    store, go, stop = tmp_path / "store.v1.json", tmp_path / "go", tmp_path / "stop"
    env = {
        **os.environ,
        "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(tmp_path / "runs.log"),
    }

    with Client(store) as client:
        client.init_store()
    submitters = [
        helper_process(
            env,
            str(HELPERS / "barrier_submitter.py"),
            str(store),
            str(go),
            f"o{n}",
            "300",
        )
        for n in range(4)
    ]
    busy = [
        helper_process(env, str(HELPERS / "busy.py"), str(store), str(stop), role)
        for role in ("compactor", "auditor", "reader", "reader")
    ]
    workers = [worker_process(store, env) for _ in range(2)]
    go.touch()
    submitted = []
    try:
        for proc in submitters:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            submitted += out.split()
        with Client(store) as client:
            deadline = time.monotonic() + 120
            while True:
                jobs = client.export()["jobs"].values()
                done = sum(1 for j in jobs if j["status"] == "completed")
                if done == len(submitted) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        stop.touch()
        for proc in busy:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert int(out) > 0  # each loop really ran
    finally:
        stop.touch()
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        for proc in busy + submitters:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(submitted) == len(set(submitted)) == 1200
    with Client(store) as client:
        assert client.check(strict=True).ok
        state = client.export()
    jobs = {j["job_id"]: j for j in state["jobs"].values()}
    notes = Counter(n["job_id"] for n in state["notifications"].values())
    results = Counter(r["job_id"] for r in state["results"].values())
    assert set(jobs) == set(submitted)
    assert {j["status"] for j in jobs.values()} == {"completed"}
    assert set(notes.values()) == {1} and set(results.values()) == {1}
    runs = Counter(
        line.split()[0]
        for line in (tmp_path / "runs.log").read_text().splitlines()
        if line.split()[3] == "start"
    )
    assert set(runs.values()) == {1}  # no faults here: every job ran once

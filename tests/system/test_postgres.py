"""PostgreSQL as many hosts see it: real worker processes against one database."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest

from asyncjobs import Client


def listening(url: str) -> bool:
    base = url.split("?")[0]
    with psycopg.connect(base, autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %%'"
            ).fetchone()[0]
        )


def test_an_idle_worker_starts_a_new_job_at_once_not_at_its_next_poll(pg_url, env):
    with Client(pg_url) as client:
        client.init_store()
        worker = subprocess.Popen(
            [sys.executable, "-m", "asyncjobs", "--store", pg_url, "worker"]
            + ["--app", "jobsapp:tasks", "--poll-seconds", "600"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not listening(pg_url):  # idle: it claimed nothing and listens
                assert worker.poll() is None, worker.stderr.read()
                assert time.monotonic() < deadline, "the worker never listened"
                time.sleep(0.05)
            job = client.submit(
                "echo", org="acme", payload={"x": 1}, allow_unknown=True
            )
            # It polls every 600 s: only the wake-up its submission sent runs it now.
            done = client.wait(job.job_id, org="acme", timeout=30)
            assert done.status.value == "completed"
        finally:
            worker.terminate()
            assert worker.wait(timeout=30) == 0
            worker.stderr.close()

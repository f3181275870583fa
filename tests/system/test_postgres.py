"""PostgreSQL as many hosts see it: real worker processes against one database.

Each worker process stands for a host: it has its own connection and its own
clock, and shares nothing with the others but the database. The server
restart uses a server of its own (scripts/pgserver.py); the rest share the
run's server, a schema per test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from asyncjobs import Client

from ..conftest import throwaway_pg
from .test_worker import worker_cmd

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hosts(spawn):
    """Start worker processes, each a host of its own; all killed at the end."""
    return lambda url, *args: spawn(worker_cmd(url, *args))


def runs(runs_file: Path) -> list[tuple[str, int, str]]:
    if not runs_file.exists():
        return []
    out = []
    for line in runs_file.read_text().splitlines():
        job_id, attempt, _pid, what, _at = line.split()
        out.append((job_id, int(attempt), what))
    return out


def listening(url: str) -> bool:
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %%'"
            ).fetchone()[0]
        )


def serve_on(spawn, url: str) -> Callable[..., tuple[int, dict]]:
    """Start `asyncjobs serve` on the store; returns a caller of its API as org acme."""
    proc = spawn(
        [sys.executable, "-m", "asyncjobs", "--store", url]
        + ["--lock-timeout", "60", "serve", "--port", "0"]
    )
    line = proc.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    base = f"http://127.0.0.1:{match.group(1)}"

    def call(path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"X-Org-Id": "acme", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    return call


def wait_all(client: Client, ids: list[str], org: str, timeout: float = 120) -> None:
    for job_id in ids:
        client.wait(job_id, org=org, timeout=timeout)


def test_an_idle_worker_starts_a_new_job_at_once_not_at_its_next_poll(pg_url, hosts):
    with Client(pg_url) as client:
        client.init_store()
        worker = hosts(pg_url, "--poll-seconds", "600")
        deadline = time.monotonic() + 30
        while not listening(pg_url):  # idle: it claimed nothing and listens
            assert worker.poll() is None, worker.stderr.read()
            assert time.monotonic() < deadline, "the worker never listened"
            time.sleep(0.05)
        job = client.submit("echo", org="acme", payload={"x": 1}, allow_unknown=True)
        # It polls every 600 s: only the wake-up its submission sent runs it now.
        done = client.wait(job.job_id, org="acme", timeout=30)
        assert done.status.value == "completed"


def test_workers_on_many_hosts_run_every_job_once(pg_url, hosts, runs_file):
    with Client(pg_url) as client:
        client.init_store()
        jobs = client.submit_many(
            [
                {"task": "echo", "org": f"org{n % 7}", "payload": {"n": n}}
                for n in range(300)
            ],
            allow_unknown=True,
        )
        workers = [hosts(pg_url, "--burst", "-c", "2") for _ in range(4)]
        for worker in workers:
            assert worker.wait(timeout=120) == 0, worker.stderr.read()
        done = Counter(
            j.status.value
            for j in (client.get_job(j.job_id, org=j.org_id) for j in jobs)
        )
        assert done == {"completed": 300}
    started = Counter(job_id for job_id, _, what in runs(runs_file) if what == "start")
    assert set(started) == {j.job_id for j in jobs}
    assert max(started.values()) == 1  # no job ran twice


def test_a_killed_host_loses_no_job_and_only_its_jobs_run_again(
    pg_url, hosts, runs_file
):
    with Client(pg_url) as client:
        client.init_store()
        jobs = client.submit_many(
            [
                {"task": "chaos", "org": "acme", "payload": {"ms": 300}}
                for _ in range(24)
            ],
            allow_unknown=True,
        )
        doomed = hosts(
            pg_url, "-c", "3", "--lease-seconds", "2", "--heartbeat-seconds", "0.5"
        )
        deadline = time.monotonic() + 60
        while not any(what == "start" for _, _, what in runs(runs_file)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(doomed.pid, signal.SIGKILL)  # mid-run: its jobs hold leases
        survivor = hosts(pg_url, "--burst", "-c", "3", "--lease-seconds", "2")
        assert survivor.wait(timeout=120) == 0, survivor.stderr.read()
        finals = [client.get_job(j.job_id, org="acme") for j in jobs]
    assert {j.status.value for j in finals} == {"completed"}
    again = {
        job_id
        for job_id, attempt, what in runs(runs_file)
        if what == "start" and attempt > 1
    }
    first = Counter(
        job_id
        for job_id, attempt, what in runs(runs_file)
        if what == "start" and attempt == 1
    )
    assert max(first.values()) == 1
    # only the jobs the killed host held ran again, each after its lease expired
    for job_id in again:
        events = [e.event_type for e in client_events(pg_url, job_id)]
        assert "async.job.lease_expired" in events


def client_events(url: str, job_id: str):
    with Client(url) as client:
        return client.events(job_id, org="acme")


def test_connections_killed_mid_run_lose_nothing(pg_url, hosts, runs_file):
    # the test's own connection is spared: only the workers' are killed
    with Client(f"{pg_url}&application_name=keep") as client:
        client.init_store()
        jobs = client.submit_many(
            [
                {"task": "sleep", "org": "acme", "payload": {"seconds": 0.05}}
                for _ in range(60)
            ],
            allow_unknown=True,
        )
        workers = [
            hosts(pg_url, "-c", "2", "--heartbeat-seconds", "0.5") for _ in range(2)
        ]
        base = pg_url.split("?")[0]
        killed = 0
        deadline = time.monotonic() + 90
        with psycopg.connect(base, autocommit=True) as admin:
            while time.monotonic() < deadline:
                states = Counter(
                    client.get_job(j.job_id, org="acme").status.value for j in jobs
                )
                if states.get("completed", 0) == len(jobs):
                    break
                if killed < 5:
                    killed += (
                        admin.execute(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid() AND application_name <> 'keep' "
                            "AND backend_type = 'client backend' AND datname = current_database() "
                            "AND query NOT LIKE '%%pg_stat_activity%%'"
                        ).fetchone()[0]
                        and 1
                    )
                time.sleep(0.2)
        assert killed, "no connection was killed"
        for worker in workers:
            assert worker.poll() is None, worker.stderr.read()  # they survived it
        assert {client.get_job(j.job_id, org="acme").status.value for j in jobs} == {
            "completed"
        }
    first = Counter(
        job_id
        for job_id, attempt, what in runs(runs_file)
        if what == "start" and attempt == 1
    )
    assert max(first.values()) == 1


def test_three_beat_schedulers_enqueue_one_job_per_slot(pg_url, hosts):
    with Client(pg_url) as client:
        client.init_store()
        beats = [hosts(pg_url, "--beat", "-c", "1") for _ in range(3)]
        deadline = time.monotonic() + 60
        while True:
            ticks = client.list_jobs(org="ops", task="tick", limit=1000)
            if len({j.idempotency_key for j in ticks}) >= 4:
                break
            assert time.monotonic() < deadline, [b.poll() for b in beats]
            time.sleep(0.2)
        keys = [
            j.idempotency_key
            for j in client.list_jobs(org="ops", task="tick", limit=1000)
        ]
    assert len(keys) == len(set(keys))  # one job per slot, whatever the schedulers


def test_eight_processes_racing_one_idempotency_key_make_one_job(pg_url, tmp_path, env):
    with Client(pg_url) as client:
        client.init_store()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "helpers" / "barrier_submitter.py"),
                pg_url,
                str(go),
                "acme",
                "1",
            ],
            env={**env, "ASYNCJOBS_SUBMIT_KEY": "once"},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(0.5)  # let every process connect and wait at the barrier
    go.touch()
    answers = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({job_id for job_id, _ in answers}) == 1
    assert sorted(dedup for _, dedup in answers) == ["False"] + ["True"] * 7


@pytest.mark.slow
def test_a_database_restart_mid_run_loses_nothing(
    tmp_path, env, hosts, runs_file, spawn
):
    server = throwaway_pg()  # a server of its own: this test restarts it
    url = f"{server.url}?schema=restart"
    try:
        with Client(url) as client:
            client.init_store()
            first = client.submit_many(
                [
                    {"task": "sleep", "org": "acme", "payload": {"seconds": 0.05}}
                    for _ in range(30)
                ],
                allow_unknown=True,
            )
            worker = hosts(url, "-c", "2", "--heartbeat-seconds", "0.5")
            call = serve_on(spawn, url)
            assert call(f"/analyze/jobs/{first[0].job_id}")[0] == 200
            deadline = time.monotonic() + 60
            while not runs(runs_file):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            server._run(  # its log file: the restarted server must not hold our pipes
                "pg_ctl",
                "-D",
                f"{server.folder}/data",
                "-l",
                f"{server.folder}/server.log",
                "-m",
                "fast",
                "-w",
                "restart",
            )
        # the server's pooled connections died with the restart: none is handed out
        assert call(f"/analyze/jobs/{first[0].job_id}")[0] == 200
        with Client(url) as client:  # a new connection after the restart
            second = client.submit_many(
                [
                    {"task": "echo", "org": "acme", "payload": {"n": n}}
                    for n in range(10)
                ],
                allow_unknown=True,
            )
            wait_all(client, [j.job_id for j in first + second], "acme", timeout=90)
            statuses = {
                client.get_job(j.job_id, org="acme").status.value
                for j in first + second
            }
            assert statuses == {"completed"}
            assert worker.poll() is None, (
                worker.stderr.read()
            )  # it rode out the restart
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        log = worker.stderr.read()
        # one outage, said once when it began and once when it ended
        assert log.count("store unavailable") == 1, log
        assert log.count("store available again") == 1, log
    finally:
        server.stop()


def test_a_large_result_is_kept_in_the_database_for_every_host(pg_url, tmp_path):
    from asyncjobs import TaskRegistry

    app = TaskRegistry()

    @app.task(name="big")
    def big(size: int) -> str:
        return "x" * size

    here, there = tmp_path / "host-a", tmp_path / "host-b"
    with Client(pg_url, artifacts=here, app=app) as client:
        client.init_store()
        job = client.submit("big", org="acme", payload={"size": 300_000}, sync=True)
        assert job.status.value == "completed"
    with Client(pg_url, artifacts=there) as elsewhere:  # another host, other disks
        doc = elsewhere.get_result(job.result_id, org="acme")
    assert doc["value"] == "x" * 300_000
    assert not here.exists() or not any(here.rglob("*"))  # no file on host a


def test_a_request_waiting_on_a_lock_does_not_hold_up_the_others(pg_url, spawn):
    """serve's request threads share a pool of connections, not one."""
    base, schema = pg_url.split("?schema=")
    with Client(pg_url) as client:
        client.init_store()
        job = client.submit("t", org="acme", allow_unknown=True)
    call = serve_on(spawn, pg_url)
    submitted: list[tuple[int, dict]] = []
    with (
        psycopg.connect(base, autocommit=True) as admin,
        psycopg.connect(base, autocommit=True) as watch,  # sees beyond admin's snapshot
    ):
        with admin.transaction():
            # a submission writes its fair tag to this table: it waits here
            admin.execute(f"LOCK TABLE {schema}.lanes IN EXCLUSIVE MODE")
            waiting = threading.Thread(
                target=lambda: submitted.append(
                    call("/analyze/jobs", {"task": "t", "allow_unknown": True})
                )
            )
            waiting.start()
            deadline = time.monotonic() + 30
            while not watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%%lanes%%'"
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the submission never waited"
                time.sleep(0.01)
            status, doc = call(f"/analyze/jobs/{job.job_id}")
            assert status == 200 and doc["job_id"] == job.job_id
            assert not submitted  # still waiting on the lock, while the read answered
        waiting.join(timeout=30)
    assert submitted and submitted[0][0] in (200, 201, 202)


def test_a_cleanup_of_more_than_one_batch_deletes_what_its_dry_run_reported(pg_url):
    """Retention on PostgreSQL deletes in short transactions of 1,000 jobs."""
    from asyncjobs.clock import FixedClock
    from asyncjobs.records import WorkerInfo
    from asyncjobs.tasks import TaskRegistry

    tasks = TaskRegistry()

    @tasks.task(name="t")
    def t() -> None:
        return None

    clock = FixedClock("2026-01-01T00:00:00Z")
    with Client(pg_url, clock=clock) as client:
        client.init_store()
        jobs = client.submit_many([{"task": "t", "org": "acme"}] * 1_200, tasks=tasks)
        worker = WorkerInfo(
            worker_id="w",
            host="h",
            pid=1,
            queues=["default"],
            concurrency=1,
            started_at="2026-01-01T00:00:00Z",
            last_seen_at="2026-01-01T00:00:00Z",
            heartbeat_seconds=10,
            lease_seconds=60,
        )
        client.register_worker(worker, tasks)
        claimed = client.exchange(worker, [], want=1_200, registry=tasks)[1]
        client.exchange(
            worker,
            [(token, {"ok": True, "value": 1}) for _, token in claimed],
            want=0,
            registry=tasks,
        )
        clock.advance(30 * 86400)
        keep = client.submit("t", org="acme", tasks=tasks)
        args = dict(results_ttl_seconds=86400, events_ttl_seconds=86400)
        dry = client.cleanup(dry_run=True, jobs_ttl_seconds=86400, **args)
        live = client.cleanup(dry_run=False, jobs_ttl_seconds=86400, **args)
        again = client.cleanup(dry_run=False, jobs_ttl_seconds=86400, **args)
        left = client.export()
    assert dry["jobs"]["deleted_ids"] == sorted(j.job_id for j in jobs)
    for kind in ("jobs", "results", "events", "notifications"):
        assert live[kind]["deleted_ids"] == dry[kind]["deleted_ids"], kind
        assert again[kind]["delete_count"] == 0
    assert dry["dry_run"] and not live["dry_run"]
    assert list(left["jobs"]) == [keep.job_id]
    assert {e["job_id"] for e in left["events"].values()} == {keep.job_id}
    assert not left["results"] and not left["notifications"]


def wait_for_a_lock_wait(base: str, what: str) -> None:
    with psycopg.connect(base, autocommit=True) as watch:
        deadline = time.monotonic() + 30
        while not watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, f"{what} never waited"
            time.sleep(0.01)


def test_a_write_that_waited_for_a_jobs_lock_numbers_its_event_after_the_holders(
    pg_url,
):
    """A cancel waiting on a claim's lock must see the claim's event when it gets the row."""
    from asyncjobs.services import running
    from asyncjobs.store import open_store

    base = pg_url.split("?")[0]
    with Client(pg_url) as client:
        client.init_store()
        job = client.submit("t", org="acme", allow_unknown=True)
    held, release = threading.Event(), threading.Event()

    def claim_and_hold() -> None:
        with open_store(pg_url) as store, store.transaction() as tx:
            running.claim(
                tx,
                worker_id="wrk_holder",
                queues=["default", "other"],  # the claim across several queues
                limit=1,
                lease_seconds=60,
                registry=None,
                now=tx.now,
            )
            held.set()
            release.wait(30)

    holder = threading.Thread(target=claim_and_hold)
    holder.start()
    assert held.wait(30)
    canceled: list = []

    def cancel() -> None:
        with Client(pg_url) as other:
            canceled.append(other.cancel(job.job_id, org="acme").cancel_requested_at)

    canceler = threading.Thread(target=cancel)
    canceler.start()
    wait_for_a_lock_wait(base, "the cancel")
    release.set()
    holder.join(30)
    canceler.join(30)
    assert canceled and canceled[0] is not None  # it saw the job running
    with Client(pg_url) as client:
        events = client.events(job.job_id, org="acme")
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), events
    assert len(events) == 3  # queued, started, cancel requested


def list_jobs_of(url: str) -> subprocess.CompletedProcess:
    """`asyncjobs jobs --org acme` against the store at ``url``, as a process."""
    return subprocess.run(
        [sys.executable, "-m", "asyncjobs", "--store", url, "jobs", "--org", "acme"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def test_store_init_upgrades_a_version_2_schema_and_its_pages_read_one_page(
    pg_url, pg_server
):
    """A worker or a command refuses a store of the previous schema until
    `store init`, after which an org's first page is read from an index."""
    from asyncjobs.store.postgres import schema as pg_schema

    name = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"SET search_path TO {name}")
        for version in (1, 2):
            for statement in pg_schema.MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    older = list_jobs_of(pg_url)
    assert older.returncode == 5 and "store init" in older.stderr
    with Client(pg_url) as client:
        client.init_store()
        jobs = client.submit_many([{"task": "t", "org": "acme"}] * 3)
        listed = client.list_jobs(org="acme")
        assert {j.job_id for j in listed} == {j.job_id for j in jobs}
        assert client.check().ok
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {name}")
        conn.execute("SET enable_seqscan TO off")  # as on a large table
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT doc FROM jobs WHERE org_id = 'acme' "
                "ORDER BY coalesce(created_at, '') DESC, job_id DESC LIMIT 51"
            )
        )
    assert "jobs_org_page" in plan and "Sort" not in plan


def test_a_store_url_is_named_without_its_password_wherever_it_is(tmp_path):
    url = "postgresql://app:hunter2@127.0.0.1:9/jobs?password=sekrit&schema=s"
    done = list_jobs_of(url)
    assert done.returncode == 5 and "127.0.0.1:9" in done.stderr
    assert "hunter2" not in done.stderr and "sekrit" not in done.stderr

"""asyncjobs on PostgreSQL beside procrastinate and pgqueuer, on one durable server.

    .venv/bin/pip install -r benchmarks/requirements.txt   # the peers; this installs nothing
    .venv/bin/python benchmarks/postgres_peers.py [--jobs 5000] [--e2e-jobs 2000] \\
        [--workers 2,8] [--runs 1] [--only procrastinate]

One throwaway PostgreSQL server (``scripts/pgserver.py``, ``fast=False``:
fsync on, synchronous_commit on, full_page_writes on, as the output JSON
shows from ``SHOW``) serves every system; each measurement gets a database
of its own, created empty and dropped after. Every system commits each call
durably (one transaction, WAL flushed) and runs its own worker processes:

- asyncjobs: ``Client.submit``; ``python -m asyncjobs worker --app
  benchapp:tasks --concurrency C [--burst]`` (a parent that claims and
  commits, C children that run the task); the store is a schema
  (``…?schema=bench``), made with ``asyncjobs store init``;
- procrastinate: ``task.defer()`` through its sync connector;
  ``python -m procrastinate worker --concurrency C [--one-shot]``; schema
  applied with its ``SchemaManager.apply_schema``;
- pgqueuer: ``Queries.enqueue`` over asyncpg, one job per call; a worker
  is a ``PgQueuer`` with a no-op entrypoint run by ``pgqueuer.run`` (the
  supervisor ``pgq run`` uses; ``pgq run`` itself fails here, see
  PGQUEUER_WORKER), ``mode=drain`` to stop on an empty queue; schema from
  ``Queries.install`` (durability "durable": every table LOGGED, checked).
  pgqueuer takes ``batch_size`` jobs per dequeue and has each worker run
  up to ``max_concurrent_tasks`` at once (at least twice the batch size), so
  it runs twice: "pgqueuer" as close to one job at a time as it allows
  (``batch_size=1, max_concurrent_tasks=2`` per process), and "pgqueuer
  b10" with its defaults (``batch_size=10``, no limit). Its completions are
  buffered and written in batches (``JobStatusLogBuffer``, up to 0.1 s
  later); the others commit each outcome before taking the next job.

Workloads, N = ``--jobs``, E = ``--e2e-jobs``, W each of ``--workers``:

- enqueue: N jobs submitted one call each from one process, on a database
  where one worker already ran once (asyncjobs routes by its task catalog);
- dequeue + complete: N queued jobs (bulk-inserted, untimed) drained by W
  worker processes of concurrency 1 (the main rows: "many hosts"), then by
  1 process of concurrency W; timed from starting the workers (process
  start-up included) to the last job done, which a probe counts every
  25 ms in each system's own tables;
- end to end: W workers (concurrency 1) started and registered first, then
  E jobs submitted one call each by one process; timed from the first
  submit to the last job done.

After each run the jobs are checked done exactly once, from each system's
own records: asyncjobs every job completed with one attempt and one
started event; procrastinate every job succeeded with one started event;
pgqueuer every job picked once and logged successful once, its queue
empty. What workers printed, but for the lines every normal run prints
(EXPECTED_LOG_LINES), is kept in the JSON (``worker_logs``).
The start-up and exit of W idle burst workers on an empty database is
measured too (``worker_start_exit_s``), to read the drain figures against.

Prints the table with asyncjobs/peer ratios (medians over ``--runs``) and
writes benchmarks/results/postgres_peers.json. The figures are indicative:
all systems share one small machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "scripts"))

import pgserver
import psycopg
from _common import NOOP_APP, burst_worker, write_results
from psycopg import sql

from asyncjobs import Client

PEERS = ("procrastinate", "pgqueuer", "pgqueuer-b10")
POLL_SECONDS = 0.025  # how often the probe counts the jobs done
SETTLE_SECONDS = 1.0  # after the end-to-end workers registered, before the clock
TIMEOUT_SECONDS = 600.0  # a run that takes longer has failed
# What workers print in a normal run: procrastinate's CLI greeting on stdout,
# asyncjobs acknowledging the SIGTERM that ends an end-to-end run.
EXPECTED_LOG_LINES = (
    "Launching a worker on all queues",
    "asyncjobs.worker: stopping: finishing running jobs within",
)
SERVER_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "wal_level",
    "shared_buffers",
    "max_connections",
)

PROCRASTINATE_APP = """
import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PG_DSN"])
)


@app.task(name="noop")
def noop(n):
    return None
"""

# ``pgq run benchpgq:factory`` is the documented way, but pgqueuer 1.6.0's CLI
# fails before it starts here, with typer 0.29 (its --log-level parser hands
# logconfig.setup_fancy_logger a str: "AttributeError: 'str' object has no
# attribute 'name'", with or without --log-level), so this
# calls the supervisor it would call. The factory must be an async context
# manager (the README's ``async def main() -> PgQueuer`` is refused).
PGQUEUER_WORKER = """
import argparse
import asyncio
import os
from contextlib import asynccontextmanager

import asyncpg
import pgqueuer
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.domain.types import QueueExecutionMode


@asynccontextmanager
async def factory():
    connection = await asyncpg.connect(
        os.environ["BENCH_PG_DSN"],
        server_settings={"application_name": "bench-pgqueuer-worker"},
    )
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job):
        return None

    try:
        yield pgq
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int)
    parser.add_argument("--mode", default="continuous")
    args = parser.parse_args()
    asyncio.run(
        pgqueuer.run(
            factory,
            batch_size=args.batch_size,
            max_concurrent_tasks=args.max_concurrent_tasks,
            mode=QueueExecutionMode(args.mode),
        )
    )
"""


# -- the systems --------------------------------------------------------------------
#
# Each is made on an empty database of its own (``dsn``) and folder (its worker
# modules, its worker logs). ``enqueue_each`` submits one job per call;
# ``prefill`` bulk-inserts, untimed; ``worker`` is one worker's command line;
# ``DONE``/``READY`` count jobs done and workers registered; ``verify`` checks
# every job done exactly once.


class AsyncJobs:
    name = "asyncjobs"
    durability = "PostgreSQL engine: one transaction per call, committed on the server"
    DONE = "SELECT count(*) FROM bench.jobs WHERE status = 'completed'"
    READY = "SELECT count(*) FROM bench.workers"

    def __init__(self, dsn: str, folder: Path) -> None:
        self.url = f"{dsn}?schema=bench"
        self.folder = folder
        (folder / "benchapp.py").write_text(NOOP_APP)
        self.env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}
        subprocess.run(
            [sys.executable, "-m", "asyncjobs", "--store", self.url, "store", "init"],
            check=True,
            capture_output=True,
            env=self.env,
        )
        self.client = Client(self.url)

    def enqueue_each(self, start: int, count: int) -> None:
        submit = self.client.submit
        for n in range(start, start + count):
            submit("noop", org="bench", payload={"n": n})

    def prefill(self, count: int) -> None:
        for start in range(0, count, 1000):
            self.client.submit_many(
                [
                    {"task": "noop", "org": "bench", "payload": {"n": n}}
                    for n in range(start, min(count, start + 1000))
                ]
            )

    def worker(self, concurrency: int, burst: bool) -> list[str]:
        command = burst_worker(self.url, concurrency)  # type: ignore[arg-type]
        if not burst:
            command.remove("--burst")
        return command

    def verify(self, conn: psycopg.Connection, count: int) -> dict[str, Any]:
        jobs = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed'),"
            " count(*) FILTER (WHERE (doc->>'attempts')::int = 1) FROM bench.jobs"
        ).fetchone()
        started = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM bench.events"
            " WHERE doc->>'event_type' = 'async.job.started'"
        ).fetchone()
        stats = self.client.stats()
        return {
            "jobs": jobs[0],
            "completed": jobs[1],
            "one_attempt": jobs[2],
            "started_events": started[0],
            "started_jobs": started[1],
            "stats_running": stats["running"],
            "stats_queued": sum(q["depth"] for q in stats["queues"].values()),
            "ok": jobs == (count, count, count)
            and started == (count, count)
            and stats["running"] == 0
            and sum(q["depth"] for q in stats["queues"].values()) == 0,
        }

    def close(self) -> None:
        self.client.close()


class Procrastinate:
    name = "procrastinate"
    durability = "psycopg connector: one transaction per defer / fetch / finish"
    DONE = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
    READY = "SELECT count(*) FROM procrastinate_workers"

    def __init__(self, dsn: str, folder: Path) -> None:
        import procrastinate

        # This app only defers; the workers import benchproc.app. Without
        # this, procrastinate warns that an app made in __main__ cannot be
        # found by its workers.
        logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
        (folder / "benchproc.py").write_text(PROCRASTINATE_APP)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(folder),
            "BENCH_PG_DSN": dsn,
        }
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=dsn)
        )

        @self.app.task(name="noop")
        def noop(n: int) -> None:
            return None

        self.task = noop
        self.app.open()  # the sync connector: a psycopg ConnectionPool
        self.app.schema_manager.apply_schema()

    def enqueue_each(self, start: int, count: int) -> None:
        defer = self.task.defer
        for n in range(start, start + count):
            defer(n=n)

    def prefill(self, count: int) -> None:
        for start in range(0, count, 1000):
            self.task.batch_defer(
                *({"n": n} for n in range(start, min(count, start + 1000)))
            )

    def worker(self, concurrency: int, burst: bool) -> list[str]:
        command = [sys.executable, "-m", "procrastinate", "--app", "benchproc.app"]
        command += ["--log-level", "warning", "worker", "--concurrency"]
        command.append(str(concurrency))
        return command + (["--one-shot"] if burst else [])

    def verify(self, conn: psycopg.Connection, count: int) -> dict[str, Any]:
        jobs = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'),"
            " count(*) FILTER (WHERE attempts = 1) FROM procrastinate_jobs"
        ).fetchone()
        started = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM procrastinate_events"
            " WHERE type = 'started'"
        ).fetchone()
        return {
            "jobs": jobs[0],
            "succeeded": jobs[1],
            "one_attempt": jobs[2],
            "started_events": started[0],
            "started_jobs": started[1],
            "ok": jobs == (count, count, count) and started == (count, count),
        }

    def close(self) -> None:
        self.app.close()


class PgQueuer:
    name = "pgqueuer"
    durability = "asyncpg, durability=durable (LOGGED tables); completions batched"
    DONE = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
    READY = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'bench-pgqueuer-worker'"
        " AND datname = current_database()"
    )
    batch_size: int | None = 1  # one job per dequeue...
    per_process_limit: int | None = 2  # ...and the least max_concurrent_tasks allowed

    def __init__(self, dsn: str, folder: Path) -> None:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        (folder / "benchpgq.py").write_text(PGQUEUER_WORKER)
        self.folder = folder
        self.env = {**os.environ, "BENCH_PG_DSN": dsn}
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))
        self.queries = Queries(AsyncpgDriver(self.conn))
        self.loop.run_until_complete(self.queries.install())
        with psycopg.connect(dsn) as conn:
            unlogged = conn.execute(
                "SELECT relname FROM pg_class WHERE relname LIKE 'pgqueuer%'"
                " AND relkind = 'r' AND relpersistence <> 'p'"
            ).fetchall()
        assert not unlogged, f"pgqueuer tables not durable: {unlogged}"

    def enqueue_each(self, start: int, count: int) -> None:
        enqueue = self.queries.enqueue

        async def each() -> None:
            for n in range(start, start + count):
                await enqueue("noop", json.dumps({"n": n}).encode())

        self.loop.run_until_complete(each())

    def prefill(self, count: int) -> None:
        async def bulk() -> None:
            for start in range(0, count, 1000):
                ns = range(start, min(count, start + 1000))
                await self.queries.enqueue(
                    ["noop"] * len(ns),
                    [json.dumps({"n": n}).encode() for n in ns],
                    [0] * len(ns),
                )

        self.loop.run_until_complete(bulk())

    def worker(self, concurrency: int, burst: bool) -> list[str]:
        command = [sys.executable, str(self.folder / "benchpgq.py")]
        command += ["--mode", "drain" if burst else "continuous"]
        if self.batch_size is not None:
            command += ["--batch-size", str(self.batch_size)]
        if self.per_process_limit is not None:
            limit = max(self.per_process_limit, concurrency)
            command += ["--max-concurrent-tasks", str(limit)]
        return command

    def verify(self, conn: psycopg.Connection, count: int) -> dict[str, Any]:
        logged = {
            status: (total, distinct)
            for status, total, distinct in conn.execute(
                "SELECT status::text, count(*), count(DISTINCT job_id)"
                " FROM pgqueuer_log GROUP BY 1"
            ).fetchall()
        }
        left = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()[0]
        return {
            "log": {k: list(v) for k, v in logged.items()},
            "left_in_queue": left,
            "ok": logged.get("successful") == (count, count)
            and logged.get("picked") == (count, count)
            and left == 0,
        }

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


class PgQueuerDefaults(PgQueuer):
    name = "pgqueuer-b10"
    batch_size = None  # its default: 10 per dequeue
    per_process_limit = None  # its default: no limit


SYSTEMS = (AsyncJobs, Procrastinate, PgQueuer, PgQueuerDefaults)


# -- the run ------------------------------------------------------------------------


class Bench:
    """The server, the databases made on it, and what their workers printed."""

    def __init__(self, server: pgserver.Server, base: Path) -> None:
        self.server = server
        self.base = base
        self.admin = psycopg.connect(server.url, autocommit=True)
        self.made = 0
        self.logs: dict[str, list[str]] = {}

    def dsn(self, database: str) -> str:
        return self.server.url.rsplit("/", 1)[0] + "/" + database

    def settings(self) -> dict[str, str]:
        return {
            name: self.admin.execute(f"SHOW {name}").fetchone()[0]
            for name in SERVER_SETTINGS
        }

    def fresh(self, system: type, label: str, run: Callable[..., float]) -> float:
        """Run ``run(peer, probe, folder)`` on a new database, dropped after."""
        self.made += 1
        database = f"bench_{system.name.replace('-', '_')}_{self.made}"
        self.admin.execute(
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
        )
        folder = self.base / database
        folder.mkdir()
        try:
            peer = system(self.dsn(database), folder)
            try:
                with psycopg.connect(self.dsn(database), autocommit=True) as probe:
                    return run(peer, probe, folder)
            finally:
                peer.close()
                self._keep_logs(system.name, label, folder)
        finally:
            self.admin.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(database)
                )
            )

    def _keep_logs(self, name: str, label: str, folder: Path) -> None:
        for log in sorted(folder.glob("worker-*.log")):
            lines = [
                line
                for line in log.read_text().splitlines()
                if line.strip() and not any(e in line for e in EXPECTED_LOG_LINES)
            ]
            if lines:
                kept = self.logs.setdefault(f"{name}: {label}", [])
                kept.extend(lines[: max(0, 40 - len(kept))])


def start_workers(peer: Any, folder: Path, count: int, concurrency: int, burst: bool):
    procs = []
    first = len(list(folder.glob("worker-*.log")))
    for i in range(first, first + count):
        with open(folder / f"worker-{i}.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    peer.worker(concurrency, burst),
                    cwd=folder,
                    env=peer.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a ^C of the benchmark is its to pass on
                )
            )
    return procs


def stop_workers(
    procs: list[subprocess.Popen], wait: float = 60.0, *, terminate: bool = True
) -> list[int | None]:
    """SIGTERM those running (or, without ``terminate``, those still running
    after ``wait`` s), wait; kill any left 30 s later. Returns the exit codes."""
    deadline = time.monotonic() + (0.0 if terminate else wait)
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30.0
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs]


def wait_for(probe: psycopg.Connection, query: str, target: int, procs: list) -> None:
    """Until ``query`` counts ``target``; fails if every worker exited first."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while probe.execute(query).fetchone()[0] < target:
        if all(p.poll() is not None for p in procs):
            if probe.execute(query).fetchone()[0] >= target:
                return
            raise RuntimeError(
                f"the workers exited (codes {[p.returncode for p in procs]}) "
                f"before {target} were counted by: {query}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {target}: {query}")
        time.sleep(POLL_SECONDS)


def checked(peer: Any, probe: psycopg.Connection, count: int, what: str) -> None:
    report = peer.verify(probe, count)
    if not report.pop("ok"):
        raise RuntimeError(f"{peer.name} {what}: not every job done once: {report}")


def enqueue(bench: Bench, system: type, args: argparse.Namespace) -> float:
    def run(peer: Any, probe: psycopg.Connection, folder: Path) -> float:
        # one worker has run once: asyncjobs then routes by its task catalog
        workers = start_workers(peer, folder, 1, 1, burst=True)
        stop_workers(workers, wait=60.0, terminate=False)
        started = time.perf_counter()
        peer.enqueue_each(0, args.jobs)
        return args.jobs / (time.perf_counter() - started)

    return bench.fresh(system, "enqueue", run)


def drain(
    bench: Bench, system: type, args: argparse.Namespace, procs: int, concurrency: int
) -> tuple[float, float]:
    """Jobs/s draining N queued jobs; and how long idle workers took to start and exit."""

    def run(peer: Any, probe: psycopg.Connection, folder: Path) -> float:
        started = time.perf_counter()
        workers = start_workers(peer, folder, procs, concurrency, burst=True)
        codes = stop_workers(workers, wait=60.0, terminate=False)
        idle[0] = time.perf_counter() - started
        assert codes == [0] * procs, f"{system.name} idle workers exited {codes}"
        peer.prefill(args.jobs)
        started = time.perf_counter()
        workers = start_workers(peer, folder, procs, concurrency, burst=True)
        try:
            wait_for(probe, peer.DONE, args.jobs, workers)
            elapsed = time.perf_counter() - started
            # burst / one-shot / drain workers exit by themselves once it is empty
            codes = stop_workers(workers, wait=60.0, terminate=False)
        finally:
            stop_workers(workers)  # after a failure: those left
        checked(peer, probe, args.jobs, f"drain {procs}x{concurrency}")
        if codes != [0] * procs:
            raise RuntimeError(f"{system.name} drain workers exited {codes}")
        return args.jobs / elapsed

    idle = [0.0]
    rate = bench.fresh(system, f"drain {procs} x -c {concurrency}", run)
    return rate, idle[0]


def end_to_end(
    bench: Bench, system: type, args: argparse.Namespace, procs: int
) -> float:
    def run(peer: Any, probe: psycopg.Connection, folder: Path) -> float:
        workers = start_workers(peer, folder, procs, 1, burst=False)
        try:
            wait_for(probe, peer.READY, procs, workers)
            time.sleep(SETTLE_SECONDS)
            started = time.perf_counter()
            peer.enqueue_each(0, args.e2e_jobs)
            wait_for(probe, peer.DONE, args.e2e_jobs, workers)
            elapsed = time.perf_counter() - started
        finally:
            codes = stop_workers(workers)
        checked(peer, probe, args.e2e_jobs, f"end to end x{procs}")
        if any(code not in (0, -signal.SIGTERM) for code in codes):
            raise RuntimeError(f"{system.name} end-to-end workers exited {codes}")
        return args.e2e_jobs / elapsed

    return bench.fresh(system, f"end to end {procs}", run)


def measure(bench: Bench, system: type, args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        runs.setdefault(key, []).append(value)

    for _ in range(args.runs):
        if system is not PgQueuerDefaults:  # its enqueue is pgqueuer's
            add("enqueue", enqueue(bench, system, args))
        for w in args.workers:
            rate, idle = drain(bench, system, args, w, 1)
            add(f"drain_{w}x1", rate)
            add(f"worker_start_exit_s_{w}", idle)
        for w in args.workers:
            add(f"drain_1x{w}", drain(bench, system, args, 1, w)[0])
        for w in args.workers:
            add(f"e2e_{w}", end_to_end(bench, system, args, w))
    return {
        "median": {key: statistics.median(values) for key, values in runs.items()},
        "runs": runs,
    }


def rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    found = [("enqueue", f"enqueue {args.jobs:,} jobs, one call each")]
    for w in args.workers:
        found.append(
            (f"drain_{w}x1", f"dequeue + complete {args.jobs:,}, {w} worker processes")
        )
    for w in args.workers:
        found.append(
            (f"drain_1x{w}", f"dequeue + complete {args.jobs:,}, 1 process x {w}")
        )
    for w in args.workers:
        found.append(
            (f"e2e_{w}", f"end to end {args.e2e_jobs:,} jobs, {w} workers running")
        )
    return found


def table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    names = [s.name for s in SYSTEMS if s.name in results]
    lines = [
        "| workload (jobs/s) | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for key, label in rows(args):
        ours = results["asyncjobs"]["median"].get(key)
        cells = []
        for name in names:
            value = results[name]["median"].get(key)
            if value is None:
                cells.append("—")
                continue
            cell = f"{value:,.0f}"
            if name != "asyncjobs" and ours is not None:
                cell += f" ({ours / value:.2f}×)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    # 2,000, not 5,000: 8 workers sharing 2 cores run end to end at ~100 jobs/s,
    # and the defaults are to finish in about 6 minutes on such a machine
    parser.add_argument("--e2e-jobs", type=int, default=2_000)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(w) for w in text.split(",")],
        default=[2, 8],
        help="worker counts, comma-separated (default: 2,8)",
    )
    parser.add_argument("--runs", type=int, default=1, help="medians over this many")
    parser.add_argument(
        "--only",
        choices=(*PEERS, "none"),
        action="append",
        help="peers to run beside asyncjobs (repeat; 'none': asyncjobs alone)",
    )
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / "results" / "postgres_peers.json"),
    )
    args = parser.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-pg-peers-", dir=args.dir))
    results: dict[str, dict[str, Any]] = {}
    server = pgserver.start(fast=False)
    began = time.perf_counter()
    try:
        bench = Bench(server, base)
        settings = bench.settings()
        print(
            "server: "
            + ", ".join(f"{k}={settings[k]}" for k in ("fsync", "synchronous_commit")),
            file=sys.stderr,
            flush=True,
        )
        for system in SYSTEMS:
            if args.only and system.name not in args.only and system is not AsyncJobs:
                continue
            print(f"measuring {system.name} ...", file=sys.stderr, flush=True)
            results[system.name] = measure(bench, system, args)
        bench.admin.close()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    text = table(results, args)
    print(text)
    print()
    print("ratios are asyncjobs/peer (above 1: asyncjobs ahead)")
    idle = {
        name: {
            w: round(result["median"][f"worker_start_exit_s_{w}"], 3)
            for w in args.workers
        }
        for name, result in results.items()
    }
    print(f"start and exit of W idle burst workers (s): {json.dumps(idle)}")
    if bench.logs:
        print(f"worker output kept in the JSON for: {', '.join(sorted(bench.logs))}")
    print(f"took {time.perf_counter() - began:.0f} s")
    doc = {
        "benchmark": "postgres_peers",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "server": settings,
        "versions": {
            name: metadata.version(name)
            for name in ("procrastinate", "pgqueuer", "asyncpg", "psycopg")
        },
        "settings": {**vars(args), "seconds": round(time.perf_counter() - began, 1)},
        "durability": {s.name: s.durability for s in SYSTEMS},
        "results": results,
        "worker_start_exit_s": idle,
        "worker_logs": bench.logs,
        "table": text,
    }
    write_results(args.output, doc)


if __name__ == "__main__":
    main()

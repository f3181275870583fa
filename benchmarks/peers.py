"""asyncjobs beside the tools users would otherwise pick, in one run, on one disk.

    .venv/bin/pip install -r benchmarks/requirements.txt   # the peers; this installs nothing
    .venv/bin/python benchmarks/peers.py [--jobs 10000] [--e2e-jobs 5000] [--retained 100000]

Every system commits durably: asyncjobs with ASYNCJOBS_FSYNC=always (an
fsync per commit), each SQLite-based peer in WAL mode with
``synchronous=FULL`` (an fsync of the WAL per commit; litequeue's own
default is NORMAL, which is not durable on power loss, so it is raised).
Workloads:

- enqueue: N jobs, one durable transaction each;
- dequeue + complete: N jobs taken and finished one at a time. asyncjobs
  finishes a job and claims the next in one commit (what its worker does);
  huey deletes the message as it dequeues (a crash loses it: at most once);
  persist-queue and litequeue mark the message taken, then done (two
  commits);
- end to end: E no-op jobs run by 2 workers (asyncjobs ``worker --burst
  -c 2``; huey's consumer with 2 worker threads; for the queues without a
  worker, a loop of take + done in 2 processes for litequeue, in 2 threads
  sharing one queue for persist-queue, whose queue objects in two processes
  handed out some items twice here);
- enqueue p50 latency over 1,000 enqueues with R jobs already in the store.

Prints the table with asyncjobs/peer ratios and writes
benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
os.environ["ASYNCJOBS_FSYNC"] = "always"

from _common import NOOP_APP, burst_worker, percentile, write_results  # noqa: E402

from asyncjobs import Client
from asyncjobs.records import WorkerInfo
from asyncjobs.tasks import TaskRegistry

PEERS = ("asyncjobs", "huey", "persist-queue", "litequeue")
# -- asyncjobs --------------------------------------------------------------------


def _registry() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.task(name="noop")
    def noop(**payload: object) -> None:
        return None

    return registry


def _worker_info(client: Client) -> WorkerInfo:
    from asyncjobs import clock, ids

    stamp = clock.to_iso(clock.now())
    return WorkerInfo(
        worker_id=ids.new_id("wrk", clock.now()),
        host=platform.node(),
        pid=os.getpid(),
        queues=["default"],
        concurrency=1,
        started_at=stamp,
        last_seen_at=stamp,
        heartbeat_seconds=10.0,
        lease_seconds=60.0,
    )


class AsyncJobs:
    name = "asyncjobs"
    durability = "ASYNCJOBS_FSYNC=always: journal line fsynced per commit"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = folder / "store.v1.json"
        self.client = Client(self.store)

    def enqueue(self, n: int) -> None:
        self.client.submit("noop", org="bench", payload={"n": n})

    def prefill(self, count: int) -> None:
        for start in range(0, count, 5000):
            self.client.submit_many(
                [
                    {"task": "noop", "org": "bench", "payload": {"n": i}}
                    for i in range(start, min(count, start + 5000))
                ]
            )

    def drain(self, count: int) -> None:
        registry = _registry()
        worker = self.client.register_worker(_worker_info(self.client))
        outcomes: list = []
        done = 0
        while done < count:
            _, claimed = self.client.exchange(
                worker, outcomes, want=1, registry=registry, expire=False
            )
            done += len(outcomes)
            outcomes = [
                (token, {"job_id": job.job_id, "ok": True, "value": None})
                for job, token in claimed
            ]
            if not claimed and not outcomes:
                break
        if outcomes:
            self.client.exchange(worker, outcomes, want=0, registry=registry)

    def end_to_end(self, count: int) -> float:
        (self.folder / "benchapp.py").write_text(NOOP_APP)
        self.prefill(count)
        started = time.perf_counter()
        subprocess.run(
            burst_worker(self.store, 2),
            check=True,
            env={**os.environ, "PYTHONPATH": f"{self.folder}{os.pathsep}{ROOT}"},
        )
        elapsed = time.perf_counter() - started
        with self.client._store.read() as tx:
            done = sum(1 for j in tx.scan("jobs") if j["status"] == "completed")
        assert done == count, f"asyncjobs completed {done} of {count}"
        return elapsed

    def close(self) -> None:
        self.client.close()


# -- huey ---------------------------------------------------------------------------


HUEY_APP = """
from huey import SqliteHuey

huey = SqliteHuey("bench", filename={filename!r}, fsync=True)


@huey.task()
def noop(n):
    return 1
"""


class Huey:
    name = "huey"
    durability = "SqliteHuey(fsync=True): WAL, synchronous=FULL"

    def __init__(self, folder: Path) -> None:
        import importlib

        self.folder = folder
        (folder / "benchhuey.py").write_text(
            HUEY_APP.format(filename=str(folder / "huey.db"))
        )
        sys.path.insert(0, str(folder))
        sys.modules.pop("benchhuey", None)
        self.module = importlib.import_module("benchhuey")
        sys.path.remove(str(folder))
        self.huey = self.module.huey

    def enqueue(self, n: int) -> None:
        self.module.noop(n)

    def prefill(self, count: int) -> None:
        self.huey.storage.conn.execute("pragma synchronous=0")
        for n in range(count):
            self.module.noop(n)
        self.huey.storage.conn.execute("pragma synchronous=2")

    def drain(self, count: int) -> None:
        for _ in range(count):
            task = self.huey.dequeue()
            if task is None:
                break
            self.huey.execute(task)

    def end_to_end(self, count: int) -> float:
        self.prefill(count)
        started = time.perf_counter()
        consumer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "huey.bin.huey_consumer",
                "benchhuey.huey",
                "--workers",
                "2",
                "--worker-type",
                "thread",
                "--quiet",
            ],
            cwd=self.folder,
            env={**os.environ, "PYTHONPATH": str(self.folder)},
        )
        try:
            while self.huey.result_count() < count:
                if consumer.poll() is not None:
                    raise SystemExit("the huey consumer stopped")
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
        finally:
            consumer.terminate()
            consumer.wait()
        return elapsed

    def close(self) -> None:
        pass


# -- persist-queue and litequeue: no worker of their own ---------------------------


def _ack_queue(folder: Path):
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(str(folder / "pq"), multithreading=True, auto_commit=True)
    for conn in (queue._putter, queue._getter):
        conn.execute("PRAGMA synchronous=FULL")
    return queue


def _lite_queue(folder: Path):
    from litequeue import LiteQueue

    queue = LiteQueue(str(folder / "lq.db"))
    queue.conn.execute("PRAGMA synchronous=FULL")
    return queue


def _lq_worker(folder: str, done: multiprocessing.Value) -> None:
    queue = _lite_queue(Path(folder))
    while (message := queue.pop()) is not None:
        queue.done(message.message_id)
        with done.get_lock():
            done.value += 1


def _two_processes(target: Callable, folder: Path, count: int) -> float:
    done = multiprocessing.Value("i", 0)
    workers = [
        multiprocessing.Process(target=target, args=(str(folder), done))
        for _ in range(2)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    assert done.value == count, f"{done.value} of {count}"
    return elapsed


class PersistQueue:
    name = "persist-queue"
    durability = "SQLiteAckQueue(auto_commit=True): WAL, synchronous=FULL"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.queue = _ack_queue(folder)

    def enqueue(self, n: int) -> None:
        self.queue.put({"task": "noop", "n": n})

    def prefill(self, count: int) -> None:
        for conn in (self.queue._putter, self.queue._getter):
            conn.execute("PRAGMA synchronous=OFF")
        for n in range(count):
            self.enqueue(n)
        for conn in (self.queue._putter, self.queue._getter):
            conn.execute("PRAGMA synchronous=FULL")

    def drain(self, count: int) -> None:
        for _ in range(count):
            self.queue.ack(self.queue.get(block=False))

    def end_to_end(self, count: int) -> float:
        # Two threads over one queue object: its documented model. Two
        # processes each with its own queue object took some items twice.
        self.prefill(count)
        taken: list[int] = []

        def work() -> None:
            from persistqueue import Empty

            while True:
                try:
                    item = self.queue.get(block=False)
                except Empty:
                    return
                self.queue.ack(item)
                taken.append(item["n"])

        threads = [threading.Thread(target=work) for _ in range(2)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert sorted(taken) == list(range(count)), f"{len(taken)} of {count}"
        return elapsed

    def close(self) -> None:
        self.queue.close()


class LiteQueue:
    name = "litequeue"
    durability = "LiteQueue with synchronous raised to FULL (WAL)"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.queue = _lite_queue(folder)

    def enqueue(self, n: int) -> None:
        self.queue.put(json.dumps({"task": "noop", "n": n}))

    def prefill(self, count: int) -> None:
        self.queue.conn.execute("PRAGMA synchronous=OFF")
        for n in range(count):
            self.enqueue(n)
        self.queue.conn.execute("PRAGMA synchronous=FULL")

    def drain(self, count: int) -> None:
        for _ in range(count):
            message = self.queue.pop()
            self.queue.done(message.message_id)

    def end_to_end(self, count: int) -> float:
        self.prefill(count)
        return _two_processes(_lq_worker, self.folder, count)

    def close(self) -> None:
        self.queue.close()


SYSTEMS = (AsyncJobs, Huey, PersistQueue, LiteQueue)


# -- the users' setup: my jobs, their worker --------------------------------------

COUNTER_TASK = """
def _count(path):
    # the task's only side effect: one byte appended to a counter file
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
"""
USERS_HUEY = (
    "import os\nfrom huey import SqliteHuey\n"
    + COUNTER_TASK
    + """
huey = SqliteHuey("users", filename={filename!r}, fsync=True)


@huey.task()
def count(n):
    _count({counter!r})
"""
)
USERS_ASYNCJOBS = (
    "import os\nimport asyncjobs.tasks\n"
    + COUNTER_TASK
    + """
tasks = asyncjobs.tasks.TaskRegistry()


@tasks.task(name="count")
def count(**payload):
    _count({counter!r})
"""
)


def _load(folder: Path, name: str):
    import importlib

    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def users_setup(base: Path, jobs: int) -> dict[str, dict[str, float]]:
    """N jobs submitted one call each, then drained by the system's own worker, 2 processes.

    huey: ``huey_consumer -k process -w 2``; asyncjobs: ``worker --burst -c 2``.
    Each job appends a byte to a counter file; the drain ends when it holds
    N bytes (worker start-up included for both).
    """
    out: dict[str, dict[str, float]] = {}
    for name in ("huey", "asyncjobs"):
        folder = Path(tempfile.mkdtemp(prefix=f"users-{name}-", dir=base))
        counter = folder / "counter"
        module_name = f"users{name}"
        app = USERS_HUEY if name == "huey" else USERS_ASYNCJOBS
        (folder / f"{module_name}.py").write_text(
            app.format(filename=str(folder / "huey.db"), counter=str(counter))
        )
        module = _load(folder, module_name)
        env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}
        client = None
        started = time.perf_counter()
        if name == "huey":
            for n in range(jobs):
                module.count(n)
        else:
            client = Client(folder / "store.v1.json")
            for n in range(jobs):
                client.submit(
                    "count", org="bench", payload={"n": n}, tasks=module.tasks
                )
        submitted = time.perf_counter()
        if name == "huey":
            command = [sys.executable, "-m", "huey.bin.huey_consumer"]
            command += [f"{module_name}.huey", "-k", "process", "-w", "2", "--quiet"]
        else:
            command = burst_worker(folder / "store.v1.json", 2)
            command[command.index("benchapp:tasks")] = f"{module_name}:tasks"
        worker = subprocess.Popen(command, cwd=folder, env=env)
        try:
            while not counter.exists() or counter.stat().st_size < jobs:
                if worker.poll() is not None and name == "huey":
                    raise SystemExit("the huey consumer stopped")
                time.sleep(0.002)
            drained = time.perf_counter()
        finally:
            if name == "huey":
                worker.terminate()
            worker.wait()
            if client is not None:
                client.close()
        assert counter.stat().st_size == jobs, f"{name} ran a job twice"
        out[name] = {
            "submit_jobs_per_s": jobs / (submitted - started),
            "drain_jobs_per_s": jobs / (drained - submitted),
            "end_to_end_jobs_per_s": jobs / (drained - started),
        }
    return out


def users_table(results: dict[str, dict[str, float]], jobs: int) -> str:
    lines = [
        f"| {jobs:,} jobs, submitted one call each, then drained by 2 worker "
        "processes | asyncjobs | huey |",
        "| --- | --- | --- |",
    ]
    for key, label in (
        ("submit_jobs_per_s", "submit (jobs/s)"),
        ("drain_jobs_per_s", "drain, worker start included (jobs/s)"),
        ("end_to_end_jobs_per_s", "end to end (jobs/s)"),
    ):
        ours, theirs = results["asyncjobs"][key], results["huey"][key]
        lines.append(
            f"| {label} | {ours:,.0f} | {theirs:,.0f} ({ours / theirs:.2f}×) |"
        )
    return "\n".join(lines)


# -- the run ------------------------------------------------------------------------


def measure(system: type, base: Path, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}

    def fresh() -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"{system.name}-", dir=base))
        return folder

    peer = system(fresh())
    try:
        started = time.perf_counter()
        for n in range(args.jobs):
            peer.enqueue(n)
        figures["enqueue_jobs_per_s"] = args.jobs / (time.perf_counter() - started)
        started = time.perf_counter()
        peer.drain(args.jobs)
        figures["dequeue_complete_jobs_per_s"] = args.jobs / (
            time.perf_counter() - started
        )
    finally:
        peer.close()
    peer = system(fresh())
    try:
        figures["end_to_end_jobs_per_s"] = args.e2e_jobs / peer.end_to_end(
            args.e2e_jobs
        )
    finally:
        peer.close()
    peer = system(fresh())
    try:
        peer.prefill(args.retained)
        samples = []
        for n in range(1000):
            started = time.perf_counter()
            peer.enqueue(n)
            samples.append((time.perf_counter() - started) * 1000)
        figures["enqueue_p50_ms_retained"] = statistics.median(samples)
        figures["enqueue_p95_ms_retained"] = percentile(samples, 0.95)
    finally:
        peer.close()
    return figures


ROWS = (
    (
        "enqueue_jobs_per_s",
        "enqueue {jobs:,} jobs, one durable transaction each (jobs/s)",
        True,
    ),
    ("dequeue_complete_jobs_per_s", "dequeue + complete {jobs:,} (jobs/s)", True),
    (
        "end_to_end_jobs_per_s",
        "end to end with a worker, {e2e_jobs:,} no-op jobs (jobs/s)",
        True,
    ),
    (
        "enqueue_p50_ms_retained",
        "enqueue p50 latency with {retained:,} jobs retained (ms)",
        False,
    ),
)


def table(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    names = [s.name for s in SYSTEMS if s.name in results]
    lines = [
        "| workload | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for key, label, higher_is_better in ROWS:
        ours = results["asyncjobs"][key]
        cells = []
        for name in names:
            value = results[name][key]
            cell = f"{value:,.0f}" if higher_is_better else f"{value:.3f}"
            if name != "asyncjobs":
                ratio = ours / value if higher_is_better else value / ours
                cell += f" ({ratio:.2f}×)"
            cells.append(cell)
        lines.append(f"| {label.format(**vars(args))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--e2e-jobs", type=int, default=5_000)
    parser.add_argument("--retained", type=int, default=100_000)
    parser.add_argument(
        "--users-jobs",
        type=int,
        default=5_000,
        help="jobs of the users' setup (0: leave it out)",
    )
    parser.add_argument("--only", choices=PEERS, action="append")
    parser.add_argument(
        "--users-only", action="store_true", help="run only the users' setup"
    )
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "peers.json")
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-peers-", dir=args.dir))
    results: dict[str, dict[str, float]] = {}
    try:
        for system in () if args.users_only else SYSTEMS:
            if (
                args.only
                and system.name not in args.only
                and system.name != "asyncjobs"
            ):
                continue
            print(f"measuring {system.name} ...", file=sys.stderr, flush=True)
            results[system.name] = measure(system, base, args)
        users = {}
        if args.users_jobs:
            print("measuring the users' setup ...", file=sys.stderr, flush=True)
            users = users_setup(base, args.users_jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = table(results, args) if results else ""
    if text:
        print(text)
        print()
    if users:
        print(users_table(users, args.users_jobs))
        print()
    print(
        "ratios are asyncjobs/peer (above 1: asyncjobs ahead); "
        "for latency, peer/asyncjobs"
    )
    doc = {
        "benchmark": "peers",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "settings": vars(args),
        "durability": {s.name: s.durability for s in SYSTEMS},
        "results": results,
        "table": text,
        "users_setup": users,
    }
    write_results(args.output, doc)


if __name__ == "__main__":
    main()

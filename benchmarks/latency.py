"""Queue-to-finish latency of jobs submitted at a steady rate to a running worker.

    .venv/bin/python benchmarks/latency.py [--case 0:500 --case 10:100] [--seconds 6]

For each case ``MS:RATE`` (a task that sleeps MS milliseconds, 0: returns
at once; RATE jobs a second), starts ``asyncjobs worker --concurrency C
--poll-seconds 0.01`` as a real process with durable commits, submits jobs
one call each at that rate for ``--seconds``, waits until every one is
completed, and reports p50/p95/p99 of each job's ``finished_at`` minus its
``created_at`` (both written by the store on this host). The poll is short
so that the figure is the worker's own delay, not the time an idle worker
sleeps between looks (the JSON file has no wake-ups). Writes
benchmarks/results/latency.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import percentile, write_results  # noqa: E402

from asyncjobs import Client
from asyncjobs.clock import parse_iso

APP = """
import time
import asyncjobs.tasks
tasks = asyncjobs.tasks.TaskRegistry()

@tasks.task(name="work")
def work(ms=0, **payload):
    if ms:
        time.sleep(ms / 1000)
"""


def run(
    folder: Path, args: argparse.Namespace, ms: float, rate: float
) -> dict[str, float]:
    store = folder / f"store-{ms:g}" / "store.v1.json"
    env = {
        **os.environ,
        "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}",
        "ASYNCJOBS_FSYNC": "always",
    }
    with Client(store) as client:
        client.init_store()
        worker = subprocess.Popen(
            [sys.executable, "-m", "asyncjobs", "--store", str(store), "worker"]
            + ["--app", "benchapp:tasks", "--concurrency", str(args.concurrency)]
            + ["--poll-seconds", "0.01", "--log-level", "warning"],
            cwd=folder,
            env=env,
        )
        try:
            count = int(rate * args.seconds)
            started = time.perf_counter()
            ids = []
            for n in range(count):
                pause = started + n / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                ids.append(
                    client.submit("work", org="bench", payload={"ms": ms}).job_id
                )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if client.get_job(ids[-1], org="bench").status == "completed":
                    jobs = [client.get_job(i, org="bench") for i in ids]
                    if all(j.status == "completed" for j in jobs):
                        break
                time.sleep(0.05)
            else:
                raise SystemExit("the jobs did not complete within 120 s")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    waits = [
        (parse_iso(j.finished_at) - parse_iso(j.created_at)).total_seconds() * 1000
        for j in jobs
    ]
    return {
        "task_ms": ms,
        "rate": rate,
        "jobs": len(waits),
        "p50_ms": percentile(waits, 0.50),
        "p95_ms": percentile(waits, 0.95),
        "p99_ms": percentile(waits, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--case", action="append", metavar="MS:RATE")
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "latency.json")
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-latency-", dir=args.dir))
    rows = []
    try:
        (folder / "benchapp.py").write_text(APP)
        for case in args.case or ["0:500", "10:100"]:
            ms, rate = (float(part) for part in case.split(":"))
            rows.append(run(folder, args, ms, rate))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"jobs submitted one call each for {args.seconds:g} s, worker "
        f"--concurrency {args.concurrency} --poll-seconds 0.01, fsync always"
    )
    print("| task | jobs/s | p50 ms | p95 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['task_ms']:g} ms | {row['rate']:g} | {row['p50_ms']:.1f} "
            f"| {row['p95_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    doc = {"benchmark": "latency", "settings": vars(args), "rows": rows}
    write_results(args.output, doc)


if __name__ == "__main__":
    main()

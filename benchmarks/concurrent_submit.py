"""Concurrent submitters in one process: asyncjobs (group commit) beside huey.

    .venv/bin/python benchmarks/concurrent_submit.py [--jobs 8000] [--threads 1,4,8,16]

For each thread count, that many threads of one process submit ``--jobs``
jobs between them, one call each, every commit durable: asyncjobs'
``Client.submit`` on one JSON store (a commit that finds other threads
waiting writes their transactions with its own, one fsync for all), and
huey's ``SqliteHuey(fsync=True)`` enqueue (WAL, synchronous=FULL). Reports
jobs/s and the ratio. Writes benchmarks/results/concurrent_submit.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import write_results  # noqa: E402

from asyncjobs import Client  # noqa: E402


def timed(threads: int, jobs: int, submit: Callable[[int], object]) -> float:
    """Jobs/s of ``threads`` threads calling ``submit`` ``jobs`` times between them."""
    start = threading.Barrier(threads + 1)

    def work(share: int) -> None:
        start.wait()
        for n in range(share):
            submit(n)

    shares = [jobs // threads + (n < jobs % threads) for n in range(threads)]
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return jobs / (time.perf_counter() - began)


def asyncjobs_rate(folder: Path, threads: int, jobs: int) -> float:
    with Client(folder / "store.v1.json") as client:
        client.init_store()
        return timed(
            threads,
            jobs,
            lambda n: client.submit("reports.build", org="bench", payload={"n": n}),
        )


def huey_rate(folder: Path, threads: int, jobs: int) -> float:
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(folder / "huey.db"), fsync=True)

    @huey.task()
    def build(n: int) -> None:
        pass

    return timed(threads, jobs, build)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8000)
    parser.add_argument("--threads", default="1,4,8,16")
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / "results" / "concurrent_submit.json"),
    )
    args = parser.parse_args()
    os.environ["ASYNCJOBS_FSYNC"] = "always"
    base = Path(tempfile.mkdtemp(prefix="bench-concurrent-", dir=args.dir))
    rows = []
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            row = {"threads": threads}
            for name, rate in (("asyncjobs", asyncjobs_rate), ("huey", huey_rate)):
                folder = base / f"{name}-{threads}"
                folder.mkdir()
                row[name] = rate(folder, threads, args.jobs)
            rows.append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"| threads | asyncjobs (jobs/s) | huey (jobs/s) |  ({args.jobs:,} jobs)")
    print("| --- | --- | --- |")
    for row in rows:
        ratio = row["asyncjobs"] / row["huey"]
        print(
            f"| {row['threads']} | {row['asyncjobs']:,.0f} | "
            f"{row['huey']:,.0f} ({ratio:.2f}×) |"
        )
    doc = {"benchmark": "concurrent_submit", "settings": vars(args), "rows": rows}
    write_results(args.output, doc)


if __name__ == "__main__":
    main()

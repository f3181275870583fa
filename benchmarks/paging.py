"""The cost of one page of an org's jobs, sort-and-slice against the sorted index.

    .venv/bin/python benchmarks/paging.py [--sizes 1000,100000] [--reads 100]

For each size, a store holds an org of that many jobs (and 1,000 of another
org), opened once as a long-running process (the HTTP server) keeps it. Timed,
as the median of ``--reads`` calls:

- before: what ``Client.list_jobs`` did until paging, and the only way to a
  page: every job of the org from the hash index, sorted, sliced;
- after, first page: ``Client.page_jobs(limit=...)``;
- after, mid-walk: ``Client.page_jobs`` with the cursor of the page halfway
  down the org's jobs;
- after, filtered: the first page of ``status="failed"``, a tenth of the jobs
  (a filter reads past the jobs it leaves out).

Also timed once each, as in a new process (a CLI command): the first page by
sort-and-slice, and by ``page_jobs``, which builds the org's sorted index.
Prints a table and writes benchmarks/results/paging.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asyncjobs import Client
from asyncjobs.records import Job
from asyncjobs.store import JsonFileStore

ORG = "acme"


def job_record(i: int, org: str) -> dict:
    key = f"job_{org[:1]}{i:025d}"
    second, micro = divmod(i, 1000)
    stamp = f"2026-11-{1 + second // 86400:02d}T{second // 3600 % 24:02d}:"
    stamp += f"{second // 60 % 60:02d}:{second % 60:02d}.{micro:06d}Z"
    return {
        "job_id": key,
        "org_id": org,
        "task": "reports.build",
        "queue": "default",
        "priority": 5,
        "status": "failed" if i % 10 == 0 else "completed",
        "payload": {"month": "2026-10", "row": i},
        "attempts": 1,
        "max_retries": 3,
        "run": 1,
        "result_id": None,
        "error": None,
        "idempotency_key": None,
        "created_at": stamp,
        "updated_at": stamp,
        "run_after": stamp,
    }


def populate(path: Path, size: int) -> None:
    with JsonFileStore(path, fsync=False) as store:
        store.initialize()
        for org, count in ((ORG, size), ("globex", 1000)):
            for start in range(0, count, 5000):
                with store.transaction() as tx:
                    for i in range(start, min(count, start + 5000)):
                        record = job_record(i, org)
                        tx.put("jobs", record["job_id"], record)
        store.compact()


def sort_and_slice(client: Client, limit: int) -> list[Job]:
    """The page as ``list_jobs`` made it before the sorted index."""
    with client.store.read() as tx:
        found = list(tx.find("jobs_by_org", ORG))
    found.sort(key=lambda r: (r["created_at"], r["job_id"]), reverse=True)
    return [Job.from_dict(r) for r in found[:limit]]


def median_ms(call: Callable[[], object], reads: int) -> float:
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def measure(folder: Path, size: int, limit: int, reads: int) -> dict:
    path = folder / f"store-{size}" / "store.v1.json"
    path.parent.mkdir(parents=True)
    populate(path, size)
    with Client(path) as client:  # as a new process: the snapshot alone is read
        client.get_job(f"job_a{0:025d}", org=ORG)
        started = time.perf_counter()
        sort_and_slice(client, limit)
        cold_before = (time.perf_counter() - started) * 1e3
    with Client(path) as client:
        client.get_job(f"job_a{0:025d}", org=ORG)
        started = time.perf_counter()
        first = client.page_jobs(org=ORG, limit=limit)
        cold = (time.perf_counter() - started) * 1e3
        assert [j.job_id for j in first] == [
            j.job_id for j in sort_and_slice(client, limit)
        ]
        cursor, walked = None, 0
        while walked < size // 2:  # the cursor halfway down, 10,000 at most a page
            step = min(10_000, size // 2 - walked)
            cursor = client.page_jobs(org=ORG, limit=step, cursor=cursor).next_cursor
            walked += step
        row = {
            "org_jobs": size,
            "limit": limit,
            "before_sort_and_slice_ms": median_ms(
                lambda: sort_and_slice(client, limit), reads
            ),
            "after_first_page_ms": median_ms(
                lambda: client.page_jobs(org=ORG, limit=limit), reads
            ),
            "after_mid_walk_page_ms": median_ms(
                lambda: client.page_jobs(org=ORG, limit=limit, cursor=cursor), reads
            ),
            "after_filtered_page_ms": median_ms(
                lambda: client.page_jobs(org=ORG, status="failed", limit=limit), reads
            ),
            "before_new_process_ms": cold_before,
            "after_first_page_new_process_ms": cold,
        }
    row["speedup"] = row["before_sort_and_slice_ms"] / row["after_first_page_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument(
        "--dir", default=str(ROOT / "runtime"), help="a folder for the stores"
    )
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "paging.json")
    )
    args = parser.parse_args()
    os.environ.setdefault("ASYNCJOBS_FSYNC", "never")  # reads only: no commits timed
    folder = Path(tempfile.mkdtemp(prefix="bench-paging-", dir=args.dir))
    try:
        rows = [
            measure(folder, int(size), args.limit, args.reads)
            for size in args.sizes.split(",")
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{'org jobs':>9} {'before ms':>10} {'first ms':>9} {'mid ms':>8} "
        f"{'failed ms':>10} {'speedup':>8} {'new process: before, after ms':>30}"
    )
    for row in rows:
        print(
            f"{row['org_jobs']:>9} {row['before_sort_and_slice_ms']:>10.3f} "
            f"{row['after_first_page_ms']:>9.3f} {row['after_mid_walk_page_ms']:>8.3f} "
            f"{row['after_filtered_page_ms']:>10.3f} {row['speedup']:>7.0f}x "
            f"{row['before_new_process_ms']:>21.1f}, "
            f"{row['after_first_page_new_process_ms']:>6.1f}"
        )
    result = {
        "benchmark": "paging",
        "reads": args.reads,
        "rows": rows,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Durable single-record commit latency against store size, next to a raw append+fsync.

    .venv/bin/python benchmarks/store_ops.py [--sizes 1000,10000,100000] [--commits 500]

For each size, a fresh store holding that many job records (with realistic
fields) takes ``--commits`` transactions of one record each, with
ASYNCJOBS_FSYNC=always; the raw cost of appending one line of the same length
to a file and fsyncing it is measured on the same disk in the same run. Also
timed: a cold open (snapshot parse + journal replay + one read) and one
compaction. Prints a table and writes benchmarks/results/store_ops.json.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import percentile  # noqa: E402

from asyncjobs.store import JsonFileStore


def job_record(i: int) -> dict:
    key = f"job_{i:026d}"
    return {
        "job_id": key,
        "org_id": f"org-{i % 7}",
        "task": "reports.build",
        "queue": "default",
        "priority": 5,
        "status": "completed",
        "payload": {"month": "2026-10", "row": i},
        "attempts": 1,
        "max_retries": 3,
        "result_id": f"res_{i:026d}",
        "error": None,
        "idempotency_key": None,
        "created_at": "2026-11-01T12:00:00.000000Z",
        "updated_at": "2026-11-01T12:00:01.000000Z",
        "run_after": "2026-11-01T12:00:00.000000Z",
    }


def raw_append_fsync(folder: Path, line: bytes, count: int) -> list[float]:
    fd = os.open(folder / "raw.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, line)
            os.fsync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    return samples


def populate(path: Path, size: int) -> None:
    with JsonFileStore(path, fsync=False) as store:
        store.initialize()
        for start in range(0, size, 2000):
            with store.transaction() as tx:
                for i in range(start, min(size, start + 2000)):
                    tx.put("jobs", f"job_{i:026d}", job_record(i))
        store.compact()


def measure(folder: Path, size: int, commits: int) -> dict:
    path = folder / f"store-{size}" / "store.v1.json"
    populate(path, size)
    started = time.perf_counter()
    with JsonFileStore(path, fsync=True) as store:
        with store.read() as tx:
            tx.get("jobs", f"job_{size // 2:026d}")
        cold_open = time.perf_counter() - started
        samples = []
        for n in range(commits):
            record = job_record(size + n)
            started = time.perf_counter()
            with store.transaction() as tx:
                tx.put("jobs", record["job_id"], record)
            samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.compact()
        compact = time.perf_counter() - started
    line_bytes = (
        os.path.getsize(f"{path}.journal") if os.path.exists(f"{path}.journal") else 0
    )
    return {
        "records": size,
        "commit_p50_ms": statistics.median(samples) * 1e3,
        "commit_p95_ms": percentile(samples, 0.95) * 1e3,
        "cold_open_ms": cold_open * 1e3,
        "compact_ms": compact * 1e3,
        "snapshot_mb": path.stat().st_size / 1e6,
        "journal_bytes_after": line_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument(
        "--dir", default=str(ROOT / "runtime"), help="a folder on the disk to measure"
    )
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "store_ops.json")
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    try:
        rows = [measure(folder, size, args.commits) for size in sizes]
        line = b"%08x %s\n" % (
            0,
            json.dumps(
                {"g": 1, "b": 0, "put": {"jobs": {"x": job_record(0)}}, "del": {}}
            ).encode(),
        )
        raw = raw_append_fsync(folder, line, args.commits)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raw_p50 = statistics.median(raw) * 1e3
    raw_p95 = percentile(raw, 0.95) * 1e3
    base = rows[0]["commit_p50_ms"]
    print(
        f"raw append+fsync of one {len(line)}-byte line: p50 {raw_p50:.3f} ms, p95 {raw_p95:.3f} ms"
    )
    print(
        f"{'records':>8} {'p50 ms':>8} {'p95 ms':>8} {'p50/raw':>8} {'p50/first':>9} "
        f"{'open ms':>8} {'compact ms':>10} {'snap MB':>8}"
    )
    for row in rows:
        row["p50_over_raw"] = row["commit_p50_ms"] / raw_p50
        row["p50_over_smallest"] = row["commit_p50_ms"] / base
        print(
            f"{row['records']:>8} {row['commit_p50_ms']:>8.3f} {row['commit_p95_ms']:>8.3f} "
            f"{row['p50_over_raw']:>8.2f} {row['p50_over_smallest']:>9.2f} "
            f"{row['cold_open_ms']:>8.1f} {row['compact_ms']:>10.1f} {row['snapshot_mb']:>8.1f}"
        )
    result = {
        "benchmark": "store_ops",
        "commits_per_size": args.commits,
        "raw_append_fsync_p50_ms": raw_p50,
        "raw_append_fsync_p95_ms": raw_p95,
        "rows": rows,
        "targets": {
            "p50_at_largest_over_smallest_max": 1.5,
            "p50_at_largest_over_raw_max": 2.0,
            "met": rows[-1]["p50_over_smallest"] <= 1.5
            and rows[-1]["p50_over_raw"] <= 2.0,
        },
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"targets met: {result['targets']['met']} (wrote {args.output})")


if __name__ == "__main__":
    main()

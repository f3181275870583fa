"""Wall time of a whole `asyncjobs status` process, and where a cold open spends it.

    .venv/bin/python benchmarks/cli_status.py [--sizes 10000,100000] [--runs 15]

For each size, a store of that many jobs, each with three events (queued,
started, completed), is built and compacted; then `asyncjobs status JOB --org`
runs as a fresh process ``--runs`` times (median and p95 wall time), next to
`python -c pass` and `python -c "import asyncjobs.cli"` for the start-up floor.
In-process, the cold open is split into reading the files, parsing JSON and
the rest. Prints a table and writes benchmarks/results/cli_status.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import percentile  # noqa: E402

from asyncjobs import Client
from asyncjobs.clock import FixedClock
from asyncjobs.store import JsonFileStore


def build(path: Path, size: int) -> str:
    """A store of ``size`` jobs with three events each; returns one job id."""
    clock = FixedClock("2026-11-01T12:00:00Z")
    with Client(JsonFileStore(path, fsync=False), clock=clock) as client:
        client.init_store()
        ids = []
        for start in range(0, size, 1000):
            batch = [
                {
                    "task": "reports.build",
                    "org": f"org-{i % 5}",
                    "payload": {"month": "2026-10", "row": i},
                }
                for i in range(start, min(size, start + 1000))
            ]
            jobs = client.submit_many(batch)
            ids += [(j.job_id, j.org_id) for j in jobs]
            clock.advance(1)
        store = client.store
        with store.transaction() as tx:
            for n, (job_id, org) in enumerate(ids):
                for seq, kind in ((2, "started"), (3, "completed")):
                    event_id = f"evt_{n:013d}{seq:013d}"
                    tx.put(
                        "events",
                        event_id,
                        {
                            "event_id": event_id,
                            "job_id": job_id,
                            "org_id": org,
                            "event_type": f"async.job.{kind}",
                            "created_at": "2026-11-01T12:00:00Z",
                            "attempt": 1,
                            "run": 1,
                            "seq": seq,
                            "data": {},
                        },
                    )
        store.compact()
    return ids[len(ids) // 2]


def timed_runs(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        samples.append(time.perf_counter() - started)
    return samples


def split_cold_open(path: Path, job_id: str, org: str) -> dict[str, float]:
    started = time.perf_counter()
    raw = path.read_bytes()
    read = time.perf_counter() - started
    started = time.perf_counter()
    json.loads(raw)
    parse = time.perf_counter() - started
    started = time.perf_counter()
    with Client(path) as client:
        client.get_job(job_id, org=org)
    total = time.perf_counter() - started
    return {
        "read_ms": read * 1e3,
        "json_parse_ms": parse * 1e3,
        "open_and_get_ms": total * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "cli_status.json")
    )
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folder = Path(tempfile.mkdtemp(prefix="bench-status-", dir=args.dir))
    rows = []
    try:
        floor = statistics.median(
            timed_runs([sys.executable, "-c", "pass"], args.runs, env)
        )
        imports = statistics.median(
            timed_runs([sys.executable, "-c", "import asyncjobs.cli"], args.runs, env)
        )
        for size in (int(s) for s in args.sizes.split(",")):
            path = folder / f"s{size}" / "store.v1.json"
            job_id, org = build(path, size)
            cmd = [
                sys.executable,
                "-m",
                "asyncjobs",
                "--store",
                str(path),
                "status",
                job_id,
                "--org",
                org,
                "--json",
            ]
            samples = timed_runs(cmd, args.runs, env)
            row = {
                "jobs": size,
                "events": size * 3,
                "snapshot_mb": path.stat().st_size / 1e6,
                "status_p50_ms": statistics.median(samples) * 1e3,
                "status_p95_ms": percentile(samples, 0.95) * 1e3,
                **split_cold_open(path, job_id, org),
            }
            rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"python start-up: {floor * 1e3:.0f} ms; + import asyncjobs.cli: {imports * 1e3:.0f} ms"
    )
    print(
        f"{'jobs':>7} {'MB':>6} {'status p50':>10} {'p95':>7} {'read':>6} {'parse':>7} {'open+get':>9}  (ms)"
    )
    for r in rows:
        print(
            f"{r['jobs']:>7} {r['snapshot_mb']:>6.1f} {r['status_p50_ms']:>10.0f} "
            f"{r['status_p95_ms']:>7.0f} {r['read_ms']:>6.0f} {r['json_parse_ms']:>7.0f} "
            f"{r['open_and_get_ms']:>9.0f}"
        )
    result = {
        "benchmark": "cli_status",
        "python_startup_ms": floor * 1e3,
        "import_cli_ms": imports * 1e3,
        "rows": rows,
        "target": {"status_p50_ms_at_10000_max": 250},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

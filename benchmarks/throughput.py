"""End-to-end throughput: N no-op jobs submitted, then drained by a burst worker.

    .venv/bin/python benchmarks/throughput.py [--jobs 5000] [--concurrency 2]

Submits ``--jobs`` no-op jobs (in batches, one transaction each), then runs
``asyncjobs worker --burst --concurrency C`` as a real process with durable
commits (ASYNCJOBS_FSYNC=always) and times it until it exits. Reports jobs/s
end to end (worker start to exit), and p50/p95 of queue-to-start latency
(from submission to the ``started`` event; it includes the time a job waits
behind the jobs before it). Writes benchmarks/results/throughput.json.
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

from _common import NOOP_APP, burst_worker, percentile  # noqa: E402

from asyncjobs import Client
from asyncjobs.clock import parse_iso


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "throughput.json")
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-throughput-", dir=args.dir))
    try:
        (folder / "benchapp.py").write_text(NOOP_APP)
        store = folder / "store" / "store.v1.json"
        with Client(store) as client:
            client.init_store()
            for start in range(0, args.jobs, 500):
                client.submit_many(
                    [
                        {"task": "noop", "org": f"org-{i % 3}", "payload": {"i": i}}
                        for i in range(start, min(args.jobs, start + 500))
                    ]
                )
        env = {
            **os.environ,
            "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}",
            "ASYNCJOBS_FSYNC": "always",
        }
        started = time.perf_counter()
        subprocess.run(
            burst_worker(store, args.concurrency),
            check=True,
            cwd=folder,
            env=env,
        )
        elapsed = time.perf_counter() - started
        with Client(store) as client:
            doc = client.export()
        statuses: dict[str, int] = {}
        for job in doc["jobs"].values():
            statuses[job["status"]] = statuses.get(job["status"], 0) + 1
        latencies = []
        created = {
            j["job_id"]: parse_iso(j["created_at"]) for j in doc["jobs"].values()
        }
        for event in doc["events"].values():
            if event["event_type"] == "async.job.started" and event["attempt"] == 1:
                latencies.append(
                    (
                        parse_iso(event["created_at"]) - created[event["job_id"]]
                    ).total_seconds()
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "benchmark": "throughput",
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "fsync": "always",
        "worker_seconds": elapsed,
        "jobs_per_second": args.jobs / elapsed,
        "statuses": statuses,
        "queue_to_start_p50_s": statistics.median(latencies),
        "queue_to_start_p95_s": percentile(latencies, 0.95),
        "target_jobs_per_second": 1000,
    }
    print(
        f"{args.jobs} no-op jobs, worker --burst --concurrency {args.concurrency}, fsync always"
    )
    print(
        f"drained in {elapsed:.2f} s: {result['jobs_per_second']:.0f} jobs/s end to end; statuses {statuses}"
    )
    print(
        f"queue-to-start latency: p50 {result['queue_to_start_p50_s']:.2f} s, "
        f"p95 {result['queue_to_start_p95_s']:.2f} s (includes waiting behind earlier jobs)"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

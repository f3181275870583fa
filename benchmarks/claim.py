"""Claim latency against the number of orgs queued: one exchange claiming 1 job, or 10.

    .venv/bin/python benchmarks/claim.py [--jobs 20000] [--orgs 10,10000] [--claims 100]

For each org count, a fresh store holds ``--jobs`` queued no-op jobs spread
evenly over that many orgs (the same total each time), submitted in batches
with fsync off. Then ``Client.exchange`` claims from it with durable commits
(ASYNCJOBS_FSYNC=always), as a worker's exchange does: ``--claims`` times
one job, then ``--claims`` times a batch of 10, each a transaction of its
own (the jobs are completed between samples, untimed). The claim order is fair between orgs, so its cost must not grow with
how many orgs are queued: the last column compares each row's p50 with the
first row's. Prints a table and writes benchmarks/results/claim.json.
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

from asyncjobs import Client
from asyncjobs.records import WorkerInfo
from asyncjobs.store import JsonFileStore
from asyncjobs.tasks import TaskRegistry


def worker() -> WorkerInfo:
    now = "2026-11-01T12:00:00.000000Z"
    return WorkerInfo(
        worker_id="wrk_bench",
        host="bench",
        pid=os.getpid(),
        queues=["default"],
        concurrency=1,
        started_at=now,
        last_seen_at=now,
        heartbeat_seconds=100.0,
        lease_seconds=300.0,
    )


def populate(path: Path, jobs: int, orgs: int) -> None:
    with Client(JsonFileStore(path, fsync=False, create_folder=True)) as client:
        client.init_store()
        for start in range(0, jobs, 1000):
            client.submit_many(
                [
                    {"task": "noop", "org": f"org-{i % orgs}", "payload": {"i": i}}
                    for i in range(start, min(jobs, start + 1000))
                ],
                allow_unknown=True,
            )
        client.compact()


def timed_claims(
    client: Client, want: int, count: int, registry: TaskRegistry | None = None
) -> list[float]:
    """Each sample one exchange that claims ``want`` jobs (and looks for lost leases).

    The jobs are completed after each sample, untimed, so that the running
    jobs the exchange looks through stay as few as a worker's.
    """
    me = worker()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        _, claimed = client.exchange(me, [], want=want, registry=registry)
        samples.append(time.perf_counter() - started)
        assert len(claimed) == want, "the store ran out of queued jobs"
        done = [(token, {"job_id": job.job_id, "ok": True}) for job, token in claimed]
        client.exchange(me, done, want=0, registry=registry, expire=False)
    return samples


def measure(folder: Path, jobs: int, orgs: int, claims: int) -> dict:
    path = folder / f"orgs-{orgs}" / "store.v1.json"
    populate(path, jobs, orgs)
    row: dict = {"orgs": orgs, "jobs": jobs}
    with Client(JsonFileStore(path, fsync=True)) as client:
        timed_claims(client, 1, 5)  # builds the indexes the claims use
        for want in (1, 10):
            samples = timed_claims(client, want, claims)
            row[f"claim{want}_p50_ms"] = statistics.median(samples) * 1e3
            row[f"claim{want}_p95_ms"] = percentile(samples, 0.95) * 1e3
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--orgs", default="10,10000")
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument(
        "--dir", default=str(ROOT / "runtime"), help="a folder on the disk to measure"
    )
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "claim.json")
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.orgs.split(",")]
    if args.jobs < 5 + 11 * args.claims:
        raise SystemExit(f"--jobs must be at least {5 + 11 * args.claims}")
    folder = Path(tempfile.mkdtemp(prefix="bench-claim-", dir=args.dir))
    try:
        rows = [measure(folder, args.jobs, orgs, args.claims) for orgs in counts]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = rows[0]
    print(f"{args.jobs} queued jobs, {args.claims} exchanges each, fsync always")
    print(
        f"{'orgs':>6} {'claim 1 p50':>11} {'p95':>7} {'claim 10 p50':>12} {'p95':>7} "
        f"{'p50/first (1, 10)':>18}"
    )
    for row in rows:
        row["claim1_p50_over_first"] = row["claim1_p50_ms"] / base["claim1_p50_ms"]
        row["claim10_p50_over_first"] = row["claim10_p50_ms"] / base["claim10_p50_ms"]
        one, ten = row["claim1_p50_over_first"], row["claim10_p50_over_first"]
        print(
            f"{row['orgs']:>6} {row['claim1_p50_ms']:>9.3f}ms"
            f" {row['claim1_p95_ms']:>7.3f} {row['claim10_p50_ms']:>10.3f}ms"
            f" {row['claim10_p95_ms']:>7.3f} {one:>9.2f} {ten:>8.2f}"
        )
    result = {
        "benchmark": "claim",
        "jobs": args.jobs,
        "claims": args.claims,
        "fsync": "always",
        "rows": rows,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

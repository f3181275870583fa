"""Permalink reads over HTTP: GET /analyze/results/{id} under concurrent clients.

    .venv/bin/python benchmarks/http_read.py [--jobs 100000] [--clients 8] [--requests 300]

Builds a store of ``--jobs`` completed jobs (each with its result, three
events and a notification), starts `asyncjobs serve` on a free loopback port,
warms it up, then runs ``--clients`` client processes that each read
``--requests`` random result permalinks (a new connection per request, as the
stdlib server speaks HTTP/1.0). Reports p50/p95/p99 latency and requests/s;
writes benchmarks/results/http_read.json. Target: p95 <= 20 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
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

from asyncjobs.store import JsonFileStore


def build(path: Path, jobs: int) -> list[tuple[str, str]]:
    """A store of completed jobs with results; returns (result_id, org) pairs."""
    stamp = "2026-11-01T12:00:00.000000Z"
    pairs = []
    with JsonFileStore(path, fsync=False) as store:
        for start in range(0, jobs, 5000):
            with store.transaction() as tx:
                for i in range(start, min(jobs, start + 5000)):
                    org = f"org-{i % 7}"
                    job_id, result_id = f"job_{i:026d}", f"res_{i:026d}"
                    tx.put(
                        "jobs",
                        job_id,
                        {
                            "job_id": job_id,
                            "org_id": org,
                            "task": "reports.build",
                            "queue": "default",
                            "priority": 5,
                            "status": "completed",
                            "payload": {"month": "2026-10", "row": i},
                            "created_at": stamp,
                            "updated_at": stamp,
                            "run_after": stamp,
                            "attempts": 1,
                            "max_retries": 3,
                            "run": 1,
                            "idempotency_key": None,
                            "result_id": result_id,
                            "error": None,
                            "worker_id": "wrk_x",
                            "lease_expires_at": None,
                            "started_at": stamp,
                            "finished_at": stamp,
                        },
                    )
                    tx.put(
                        "results",
                        result_id,
                        {
                            "result_id": result_id,
                            "job_id": job_id,
                            "org_id": org,
                            "task": "reports.build",
                            "value": {"rows": i, "month": "2026-10"},
                            "created_at": stamp,
                            "run": 1,
                            "attempt": 1,
                            "value_file": None,
                            "value_bytes": None,
                            "value_sha256": None,
                        },
                    )
                    for n, kind in enumerate(("queued", "started", "completed")):
                        event_id = f"evt_{i:020d}{n:06d}"
                        tx.put(
                            "events",
                            event_id,
                            {
                                "event_id": event_id,
                                "job_id": job_id,
                                "org_id": org,
                                "event_type": f"async.job.{kind}",
                                "created_at": stamp,
                                "attempt": 1,
                                "run": 1,
                                "seq": n + 1,
                                "data": {},
                            },
                        )
                    ntf = f"ntf_{i:026d}"
                    tx.put(
                        "notifications",
                        ntf,
                        {
                            "notification_id": ntf,
                            "job_id": job_id,
                            "org_id": org,
                            "event_type": "async.job.completed",
                            "dedupe_key": f"{job_id}:async.job.completed:run-1",
                            "created_at": stamp,
                            "channel": "in_app",
                            "read_at": None,
                        },
                    )
                    pairs.append((result_id, org))
        store.compact()
    return pairs


def client(
    port: int, pairs: list[tuple[str, str]], requests: int, seed: int, out
) -> None:
    rng = random.Random(seed)
    latencies, errors = [], 0
    for _ in range(requests):
        result_id, org = rng.choice(pairs)
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "GET",
            f"/analyze/results/{result_id}?view=latest",
            headers={"X-Org-Id": org},
        )
        response = conn.getresponse()
        response.read()
        conn.close()
        latencies.append(time.perf_counter() - started)
        errors += response.status != 200
    out.put((latencies, errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="per client")
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "http_read.json")
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-http-", dir=args.dir))
    server = None
    try:
        store = folder / "store.v1.json"
        started = time.perf_counter()
        pairs = build(store, args.jobs)
        built = time.perf_counter() - started
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asyncjobs",
                "--store",
                str(store),
                "serve",
                "--port",
                "0",
            ],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        port = int(re.search(r":(\d+)$", server.stderr.readline().strip()).group(1))
        started = time.perf_counter()
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        warm.request(
            "GET", f"/analyze/results/{pairs[0][0]}", headers={"X-Org-Id": pairs[0][1]}
        )
        assert warm.getresponse().status == 200
        first_read = time.perf_counter() - started
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        procs = [
            context.Process(target=client, args=(port, pairs, args.requests, n, out))
            for n in range(args.clients)
        ]
        started = time.perf_counter()
        for proc in procs:
            proc.start()
        gathered = [out.get(timeout=600) for _ in procs]
        elapsed = time.perf_counter() - started
        for proc in procs:
            proc.join()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
            server.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
    latencies = [s for samples, _ in gathered for s in samples]
    errors = sum(e for _, e in gathered)
    result = {
        "benchmark": "http_read",
        "jobs": args.jobs,
        "clients": args.clients,
        "requests": len(latencies),
        "errors": errors,
        "store_build_s": built,
        "first_read_s_cold_open": first_read,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p95_ms": percentile(latencies, 0.95) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "requests_per_s": len(latencies) / elapsed,
        "target_p95_ms": 20,
    }
    print(
        f"GET /analyze/results/{{id}}: {args.clients} clients x {args.requests} requests, "
        f"{args.jobs} jobs in the store"
    )
    print(
        f"p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, p99 "
        f"{result['p99_ms']:.2f} ms, {result['requests_per_s']:.0f} req/s, {errors} errors "
        f"(server's first read, a cold open: {first_read:.2f} s)"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

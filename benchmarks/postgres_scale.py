"""PostgreSQL at scale: claim latency against queue size and org count, and retention of many jobs.

    .venv/bin/python benchmarks/postgres_scale.py [--queued 10000,1000000]
        [--orgs 10,10000] [--org-jobs 20000] [--claims 200] [--terminal 1000000]

One throwaway server (scripts/pgserver.py), durable: ``fsync=on``,
``synchronous_commit=on``. Workloads:

- claim p50 with Q queued jobs (``--queued``): one exchange claiming 1 job,
  then one claiming 10, as a worker's exchange does, each its own durable
  transaction (the jobs are completed between samples, untimed). The
  queues are filled in SQL from one submitted job, each copy with its own
  id and fair tag, then ``VACUUM ANALYZE``; the goal is a flat p50.
- the same with ``--org-jobs`` jobs spread over 10 or 10,000 orgs, submitted
  through ``Client.submit_many`` (real fair tags); the goal is a flat p50.
- retention of T terminal jobs (``--terminal``), each completed with its
  result, three events and its notification (copied in SQL from one real
  job): a dry run, then the live cleanup, each timed, with the longest
  single transaction of the live cleanup (sampled every 5 ms from
  ``pg_stat_activity``) and the rows left.

``--queued ''`` or ``--orgs ''`` leaves a part out; ``--terminal 0`` too.

Prints a table and writes benchmarks/results/postgres_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).parent))

import pgserver  # noqa: E402
import psycopg  # noqa: E402
from _common import percentile  # noqa: E402
from claim import timed_claims, worker  # noqa: E402

from asyncjobs import Client  # noqa: E402
from asyncjobs.tasks import TaskRegistry  # noqa: E402

TASKS = TaskRegistry()


@TASKS.task(name="noop")
def noop(**payload: object) -> None:
    return None


def claim_row(url: str, claims: int, **what: object) -> dict:
    with Client(url) as client:
        client.register_worker(worker(), TASKS)
        timed_claims(client, 1, 5, TASKS)  # warm: connection, prepared statements
        row: dict = dict(what)
        for want in (1, 10):
            samples = timed_claims(client, want, claims, TASKS)
            row[f"claim{want}_p50_ms"] = statistics.median(samples) * 1e3
            row[f"claim{want}_p95_ms"] = percentile(samples, 0.95) * 1e3
    return row


def fresh(server_url: str, name: str) -> str:
    url = f"{server_url}?schema={name}"
    with Client(url) as client:
        client.init_store()
    return url


def fill_queued(server_url: str, url: str, schema: str, count: int) -> None:
    """``count`` queued jobs: one submitted, the rest its copies made in SQL."""
    with Client(url) as client:
        template = client.submit("noop", org="acme", payload={}, tasks=TASKS)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {schema}")
        for start in range(1, count, 200_000):
            stop = min(count - 1, start + 200_000 - 1)
            conn.execute(
                "INSERT INTO jobs (job_id, doc) "
                "SELECT x.id, (t.doc::jsonb || jsonb_build_object('job_id', x.id, "
                "'fair_tag', (t.doc->>'fair_tag')::bigint + g))::json "
                "FROM (SELECT doc FROM jobs WHERE job_id = %s) t, "
                "generate_series(%s::int, %s::int) g, "
                "LATERAL (SELECT 'job_Q' || lpad(g::text, 25, '0') AS id) x",
                (template.job_id, start, stop),
            )
        conn.execute("VACUUM ANALYZE jobs")


def fill_terminal(server_url: str, url: str, schema: str, count: int) -> None:
    """``count`` completed jobs, each with its result, events and notification."""
    with Client(url) as client:
        job = client.submit("noop", org="acme", payload={}, tasks=TASKS)
        client.register_worker(worker(), TASKS)
        ((_, token),) = client.exchange(worker(), [], want=1, registry=TASKS)[1]
        client.exchange(
            worker(), [(token, {"ok": True, "value": 1})], want=0, registry=TASKS
        )
    keys = {
        "jobs": "job_id",
        "results": "result_id",
        "events": "event_id",
        "notifications": "notification_id",
    }

    def copy_id(prefix: str, suffix: str = "'0000'") -> str:
        # copy g's id: the prefix, T, g, and a suffix telling a job's events apart
        return f"{prefix} || 'T' || lpad(g::text, 21, '0') || {suffix}"

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {schema}")
        for start in range(0, count, 100_000):
            stop = min(count, start + 100_000) - 1
            for table, key in keys.items():
                fields = {
                    key: copy_id(
                        "left(t.k, 4)",
                        "lpad(t.doc->>'seq', 4, '0')"
                        if table == "events"
                        else "'0000'",
                    ),
                    "job_id": copy_id("'job_'"),
                }
                if table == "jobs":
                    fields["result_id"] = copy_id("'res_'")
                if table == "notifications":
                    fields["dedupe_key"] = copy_id("'job_'") + " || ':completed'"
                built = ", ".join(
                    f"'{name}', {value}" for name, value in fields.items()
                )
                conn.execute(
                    f"INSERT INTO {table} ({key}, doc) "
                    f"SELECT {fields[key]}, (t.doc::jsonb || jsonb_build_object({built}))::json "
                    f"FROM (SELECT {key} AS k, doc FROM {table} WHERE job_id = %s) t, "
                    "generate_series(%s::int, %s::int) g",
                    (job.job_id, start, stop),
                )
        for table in keys:
            conn.execute(f"DELETE FROM {table} WHERE job_id = %s", (job.job_id,))
            conn.execute(f"VACUUM ANALYZE {table}")


def retention_row(server_url: str, url: str, count: int) -> dict:
    args = dict(
        results_ttl_seconds=86400,
        events_ttl_seconds=86400,
        notifications_ttl_seconds=86400,
        jobs_ttl_seconds=86400,
        now="2030-01-01T00:00:00Z",
    )
    longest = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal longest
        with psycopg.connect(server_url, autocommit=True) as conn:
            while not stop.is_set():
                age = conn.execute(
                    "SELECT coalesce(extract(epoch FROM max(clock_timestamp() - "
                    "xact_start)), 0) FROM pg_stat_activity "
                    "WHERE application_name = 'bench-cleanup' AND state <> 'idle'"
                ).fetchone()[0]
                longest = max(longest, float(age))
                stop.wait(0.005)

    named = url + "&application_name=bench-cleanup"
    with Client(named) as client:
        started = time.perf_counter()
        dry = client.cleanup(dry_run=True, **args)
        dry_seconds = time.perf_counter() - started
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            started = time.perf_counter()
            live = client.cleanup(dry_run=False, **args)
            live_seconds = time.perf_counter() - started
        finally:
            stop.set()
            sampler.join()
        left = {
            kind: count
            for kind, count in client.store.verify().counts.items()
            if kind in ("jobs", "results", "events", "notifications")
        }
    deleted = {k: live[k]["delete_count"] for k in left}
    assert deleted["jobs"] == count and dry["jobs"]["delete_count"] == count
    return {
        "terminal_jobs": count,
        "deleted": deleted,
        "left": left,
        "dry_run_s": dry_seconds,
        "live_s": live_seconds,
        "longest_transaction_s": longest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", default="10000,1000000")
    parser.add_argument("--orgs", default="10,10000")
    parser.add_argument("--org-jobs", type=int, default=20000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--terminal", type=int, default=1_000_000)
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / "results" / "postgres_scale.json"),
    )
    args = parser.parse_args()
    need = 5 + 11 * args.claims
    server = pgserver.start(fast=False)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("fsync", "synchronous_commit", "server_version")
            }
        by_queue = []
        for n, queued in enumerate(int(q) for q in args.queued.split(",") if q):
            if queued < need:
                raise SystemExit(f"--queued must be at least {need}")
            schema = f"queued_{n}"
            url = fresh(server.url, schema)
            fill_queued(server.url, url, schema, queued)
            by_queue.append(claim_row(url, args.claims, queued=queued, orgs=1))
            print("queued", by_queue[-1], flush=True)
        by_orgs = []
        for n, orgs in enumerate(int(o) for o in args.orgs.split(",") if o):
            url = fresh(server.url, f"orgs_{n}")
            with Client(url) as client:
                for start in range(0, args.org_jobs, 1000):
                    client.submit_many(
                        [
                            {"task": "noop", "org": f"org-{i % orgs}", "payload": {}}
                            for i in range(start, min(args.org_jobs, start + 1000))
                        ],
                        tasks=TASKS,
                    )
            by_orgs.append(claim_row(url, args.claims, queued=args.org_jobs, orgs=orgs))
            print("orgs", by_orgs[-1], flush=True)
        retention = None
        if args.terminal:
            url = fresh(server.url, "retention")
            started = time.perf_counter()
            fill_terminal(server.url, url, "retention", args.terminal)
            print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
            retention = retention_row(server.url, url, args.terminal)
            print("retention", retention, flush=True)
    finally:
        server.stop()

    print(
        f"\nPostgreSQL {settings['server_version']}, fsync {settings['fsync']}, "
        f"synchronous_commit {settings['synchronous_commit']}"
    )
    print(
        f"{'queued':>9} {'orgs':>6} {'claim 1 p50':>11} {'p95':>8} "
        f"{'claim 10 p50':>12} {'p95':>8}"
    )
    for row in by_queue + by_orgs:
        print(
            f"{row['queued']:>9} {row['orgs']:>6} {row['claim1_p50_ms']:>9.3f}ms"
            f" {row['claim1_p95_ms']:>8.3f} {row['claim10_p50_ms']:>10.3f}ms"
            f" {row['claim10_p95_ms']:>8.3f}"
        )
    if retention:
        print(
            f"retention of {retention['terminal_jobs']:,} terminal jobs: dry run "
            f"{retention['dry_run_s']:.1f} s, live {retention['live_s']:.1f} s, "
            f"longest transaction {retention['longest_transaction_s'] * 1e3:.0f} ms, "
            f"deleted {retention['deleted']}, left {retention['left']}"
        )
    result = {
        "benchmark": "postgres_scale",
        "server": settings,
        "claims": args.claims,
        "by_queue": by_queue,
        "by_orgs": by_orgs,
        "retention": retention,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

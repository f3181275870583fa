"""Dashboard pages on a large store: how long each page takes to render.

    .venv/bin/python benchmarks/dashboard.py [--jobs 100000] [--rounds 30] [--engine jsonfile|postgres|both]

Builds a store of ``--jobs`` jobs of one org (the worst case: every page
walks that org), imported as one document: 60% completed, 15% failed with
one of five errors, 5% canceled, each ended at a moment of the last ten
days, and 20% queued (a fifth of them delayed), each job with two events
and each ended one with its notification, then compacted (`store compact`,
on PostgreSQL a VACUUM ANALYZE, without which the planner knows nothing of
a bulk load for a minute or so). Then it asks the dashboard's
WSGI app (``serve --dashboard`` runs the same app) for each page
``--rounds`` times, signed in as an operator, after one warm-up request,
and reports the median and p95 in milliseconds, and each time a repeated
request with the page's ETag: the median of those answered 304, and how
many were not (a new minute, or on PostgreSQL another transaction, such as
autovacuum's, that took an id). PostgreSQL runs on a throwaway server
(scripts/pgserver.py) unless ASYNCJOBS_TEST_PG names one. Writes
benchmarks/results/dashboard.json. Target: every page <= 100 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

from _common import percentile, write_results  # noqa: E402

from asyncjobs import Client, clock  # noqa: E402
from asyncjobs.http.app import App  # noqa: E402
from asyncjobs.store.jsonfile import format as jsonformat  # noqa: E402

ORG = "acme"
ERRORS = ["SMTPError", "KeyError", "TimeoutError", "ValueError", "ConnectionError"]
TASKS = ["mail.send", "reports.build", "billing.charge", "images.resize"]


def document(jobs: int) -> dict:
    """An export document of ``jobs`` jobs of one org (see the module docstring)."""
    rng = random.Random(7)
    now = clock.now()
    doc: dict = {"schema": "store.v1", "jobs": {}, "events": {}, "notifications": {}}
    for i in range(jobs):
        created = now - timedelta(seconds=rng.uniform(60, 10 * 86400))
        job_id = f"job_{int(created.timestamp() * 1000):010d}{i:016d}"[:30]
        roll = rng.random()
        status = (
            "completed"
            if roll < 0.6
            else "failed"
            if roll < 0.75
            else "canceled"
            if roll < 0.8
            else "queued"
        )
        created_at = clock.to_iso(created)
        ended = created + timedelta(seconds=rng.uniform(0.01, 50))
        finished_at = clock.to_iso(min(ended, now)) if status != "queued" else None
        delayed = status == "queued" and rng.random() < 0.2
        run_after = clock.to_iso(now + timedelta(hours=1)) if delayed else created_at
        task = TASKS[i % len(TASKS)]
        error = None
        if status == "failed":
            kind = ERRORS[rng.randrange(len(ERRORS))]
            error = {"type": kind, "message": f"{kind} while running {task}"}
        doc["jobs"][job_id] = {
            "job_id": job_id,
            "org_id": ORG,
            "task": task,
            "queue": task.split(".")[0],
            "priority": 5,
            "status": status,
            "payload": {"row": i, "to": f"user{i}@example.com", "api_key": "sk-1"},
            "created_at": created_at,
            "updated_at": finished_at or created_at,
            "run_after": run_after,
            "attempts": 0 if status == "queued" else 1,
            "max_retries": 0,
            "run": 1,
            "idempotency_key": f"row-{i}",
            "result_id": None,
            "error": error,
            "worker_id": None,
            "lease_expires_at": None,
            "started_at": finished_at,
            "finished_at": finished_at,
            "cancel_requested_at": None,
            "fair_tag": None,
        }
        events = [("async.job.queued", created_at, 0)]
        if status != "queued":
            events.append((f"async.job.{status}", finished_at, 1))
            key = f"{job_id}:async.job.{status}:run-1"
            note_id = f"ntf_{job_id[4:]}"
            doc["notifications"][note_id] = {
                "notification_id": note_id,
                "job_id": job_id,
                "org_id": ORG,
                "event_type": f"async.job.{status}",
                "dedupe_key": key,
                "created_at": finished_at,
                "channel": "in_app",
                "read_at": None,
            }
        for seq, (kind, at, attempt) in enumerate(events, 1):
            event_id = f"evt_{job_id[4:-1]}{seq}"
            doc["events"][event_id] = {
                "event_id": event_id,
                "job_id": job_id,
                "org_id": ORG,
                "event_type": kind,
                "created_at": at,
                "attempt": attempt,
                "run": 1,
                "seq": seq,
                "data": {},
            }
    return doc


def call(app: App, path: str, cookie: str, etag: str | None = None):
    """One GET through the WSGI app: (status, headers)."""
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "HTTP_COOKIE": f"asyncjobs_session={cookie}",
        "HTTP_HOST": "127.0.0.1:8080",
    }
    if etag:
        environ["HTTP_IF_NONE_MATCH"] = etag
    answer: dict = {}

    def start(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(environ, start))
    return answer["status"], answer["headers"], body


def measure(url: str, doc: dict, rounds: int) -> dict:
    with Client(url) as client:
        client.init_store()
        started = time.perf_counter()
        client.import_store(doc)
        client.compact()  # on PostgreSQL VACUUM ANALYZE: the planner's statistics
        imported = time.perf_counter() - started
        token = client.create_token(orgs=[ORG], role="operator")[1]
        failed = client.list_jobs(org=ORG, status="failed", limit=1)[0].job_id
    with Client(url) as client:  # a server's client: starts cold
        app = App(client, dashboard=True)
        pages = {
            "overview": f"/dashboard/o/{ORG}/",
            "jobs": f"/dashboard/o/{ORG}/jobs",
            "jobs, failed of one task": f"/dashboard/o/{ORG}/jobs?status=failed&task=mail.send",
            "job": f"/dashboard/o/{ORG}/jobs/{failed}",
            "failures": f"/dashboard/o/{ORG}/failures",
            "inbox, unread": f"/dashboard/o/{ORG}/inbox?unread=1",
            "bulk preview (1,000 of the failed)": f"/dashboard/o/{ORG}/bulk?action=retry",
            "queues (operator)": "/dashboard/queues",
            "workers (operator)": "/dashboard/workers",
            "schedules (operator)": "/dashboard/schedules",
            "breakers (operator)": "/dashboard/breakers",
            "system (operator)": "/dashboard/system",
        }
        rows = {}
        first = time.perf_counter()
        call(app, pages["overview"], token)
        cold = time.perf_counter() - first
        for name, path in pages.items():
            status, headers, _ = call(app, path, token)  # warm-up
            assert status == 200, (name, status)
            samples, unchanged, changed = [], [], 0
            for _ in range(rounds):
                t0 = time.perf_counter()
                status, headers, _ = call(app, path, token)
                samples.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                again, _, _ = call(app, path, token, headers["ETag"])
                if again == 304:
                    unchanged.append((time.perf_counter() - t0) * 1000)
                else:  # a new minute, or (PostgreSQL) autovacuum took an id
                    changed += 1
            rows[name] = {
                "median_ms": round(statistics.median(samples), 2),
                "p95_ms": round(percentile(samples, 0.95), 2),
                "unchanged_304_median_ms": round(statistics.median(unchanged), 3)
                if unchanged
                else None,
                "not_304": changed,
            }
    return {
        "import_s": round(imported, 2),
        "first_page_cold_s": round(cold, 3),
        "pages": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--engine", choices=["jsonfile", "postgres", "both"], default="both"
    )
    args = parser.parse_args()
    jsonformat.freeze_parsed_snapshots()  # as the asyncjobs command (serve) does
    doc = document(args.jobs)
    results: dict = {"jobs": args.jobs, "rounds": args.rounds, "engines": {}}
    engines = ["jsonfile", "postgres"] if args.engine == "both" else [args.engine]
    for engine in engines:
        if engine == "jsonfile":
            with tempfile.TemporaryDirectory() as folder:
                url = os.path.join(folder, "store.v1.json")
                results["engines"][engine] = measure(url, doc, args.rounds)
        else:
            results["engines"][engine] = _on_postgres(doc, args.rounds)
        _print(engine, results["engines"][engine])
    write_results(ROOT / "benchmarks" / "results" / "dashboard.json", results)


def _on_postgres(doc: dict, rounds: int) -> dict:
    import pgserver
    import psycopg

    given = os.environ.get("ASYNCJOBS_TEST_PG")
    server = None if given else pgserver.start()
    base = given or server.url
    schema = f"bench_dashboard_{os.getpid()}"
    try:
        return measure(f"{base}?schema={schema}", doc, rounds)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if server is not None:
            server.stop()


def _print(engine: str, figures: dict) -> None:
    print(
        f"{engine}: import {figures['import_s']} s, first page of a cold client "
        f"{figures['first_page_cold_s']} s"
    )
    print(f"  {'page':40} {'median ms':>10} {'p95 ms':>8} {'304 ms':>8} {'not 304':>8}")
    for name, row in figures["pages"].items():
        print(
            f"  {name:40} {row['median_ms']:>10} {row['p95_ms']:>8} "
            f"{row['unchanged_304_median_ms']!s:>8} {row['not_304']:>8}"
        )


if __name__ == "__main__":
    main()

"""Retention cleanup over a large store: a dry run, then a live run, then a second live run.

    .venv/bin/python benchmarks/retention.py [--jobs 100000] [--rounds 5]

The store holds ``--jobs`` completed jobs, each with a result, three events
and a notification (the same builder as http_read.py). Each run is a fresh
`asyncjobs cleanup` process (so the figures include opening the store), with
TTLs that expire everything, as of a fixed --now. Every round starts from a
fresh copy of the same store; the figures are medians over the rounds.
Target: <= 3 s each. Writes benchmarks/results/retention.json.
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

from http_read import build  # noqa: E402


def run(store: Path, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "asyncjobs",
            "--store",
            str(store),
            "cleanup",
            "--results-ttl-seconds",
            "3600",
            "--events-ttl-seconds",
            "3600",
            "--notifications-ttl-seconds",
            "3600",
            "--now",
            "2030-01-01T00:00:00Z",
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "ASYNCJOBS_FSYNC": "always"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"cleanup failed ({proc.returncode}): {proc.stderr.strip()}")
    return time.perf_counter() - started, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "retention.json")
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-retention-", dir=args.dir))
    times: dict[str, list[float]] = {"dry": [], "live": [], "again": []}
    reports: dict[str, dict] = {}
    try:
        built = folder / "built.json"
        build(built, args.jobs)
        size = built.stat().st_size
        store = folder / "store.v1.json"
        for _ in range(args.rounds):
            shutil.copyfile(built, store)
            shutil.copyfile(f"{built}.journal", f"{store}.journal")
            os.sync()  # no write-back of the copy during the timed runs
            for name, extra in (("dry", ("--dry-run",)), ("live", ()), ("again", ())):
                seconds, reports[name] = run(store, *extra)
                times[name].append(seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    dry, live, again = reports["dry"], reports["live"], reports["again"]
    dry_s, live_s, again_s = (statistics.median(times[k]) for k in times)
    counts = {
        k: live[k]["delete_count"]
        for k in ("results", "events", "notifications", "jobs")
    }
    result = {
        "benchmark": "retention",
        "jobs": args.jobs,
        "rounds": args.rounds,
        "snapshot_mb": size / 1e6,
        "dry_run_s": dry_s,
        "live_s": live_s,
        "second_live_s": again_s,
        "all_runs_s": times,
        "deleted": counts,
        "second_run_deleted": sum(again[k]["delete_count"] for k in counts),
        "dry_run_would_delete": sum(dry[k]["delete_count"] for k in counts),
        "target_s": 3.0,
    }
    print(
        f"{args.jobs} terminal jobs ({size / 1e6:.0f} MB snapshot); each run a fresh "
        f"process; medians of {args.rounds} rounds"
    )
    print(
        f"dry run {dry_s:.2f} s, live {live_s:.2f} s (deleted {counts}), "
        f"second live {again_s:.2f} s (deleted {result['second_run_deleted']})"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Retention cleanup over a large store: a dry run, then a live run, then a second live run.

    .venv/bin/python benchmarks/retention.py [--jobs 100000]

The store holds ``--jobs`` completed jobs, each with a result, three events
and a notification (the same builder as http_read.py). Each run is a fresh
`asyncjobs cleanup` process (so the figures include opening the store), with
TTLs that expire everything, as of a fixed --now. Target: <= 3 s each.
Writes benchmarks/results/retention.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "retention.json")
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-retention-", dir=args.dir))
    try:
        store = folder / "store.v1.json"
        build(store, args.jobs)
        size = store.stat().st_size
        dry_s, dry = run(store, "--dry-run")
        live_s, live = run(store)
        again_s, again = run(store)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    counts = {
        k: live[k]["delete_count"]
        for k in ("results", "events", "notifications", "jobs")
    }
    result = {
        "benchmark": "retention",
        "jobs": args.jobs,
        "snapshot_mb": size / 1e6,
        "dry_run_s": dry_s,
        "live_s": live_s,
        "second_live_s": again_s,
        "deleted": counts,
        "second_run_deleted": sum(again[k]["delete_count"] for k in counts),
        "dry_run_would_delete": sum(dry[k]["delete_count"] for k in counts),
        "target_s": 3.0,
    }
    print(
        f"{args.jobs} terminal jobs ({size / 1e6:.0f} MB snapshot); each run a fresh process"
    )
    print(
        f"dry run {dry_s:.2f} s, live {live_s:.2f} s (deleted {counts}), "
        f"second live {again_s:.2f} s (deleted {result['second_run_deleted']})"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

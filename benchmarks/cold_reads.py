"""One-shot reads of a large JSON file store: wall time and peak memory of each process.

    .venv/bin/python benchmarks/cold_reads.py [--sizes 1000,100000] [--runs 7]

For each size, builds a store of that many completed jobs, each with its
result, three events and its notification (about 2 KB a job), compacts
it, then commits 200 more jobs so that the journal has lines to apply.
Then runs ``asyncjobs status JOB``, ``result JOB`` and ``events JOB`` as
fresh processes ``--runs`` times each: median wall time and the largest
peak resident memory (the kernel's ``ru_maxrss`` of that process). Also
times ``serve``'s first answer: from starting it to a 200 for one job.
Writes benchmarks/results/cold_reads.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import write_results  # noqa: E402

from asyncjobs import Client  # noqa: E402
from asyncjobs.clock import FixedClock  # noqa: E402
from asyncjobs.store import JsonFileStore  # noqa: E402

ORG = "acme"


def build(path: Path, size: int) -> tuple[str, str]:
    """The store; returns the ids of a job in its middle and of its result."""
    clock = FixedClock("2026-11-01T12:00:00Z")
    stamp = "2026-11-01T12:00:00.000000Z"
    with Client(JsonFileStore(path, fsync=False), clock=clock) as client:
        client.init_store()
        ids = []
        for start in range(0, size, 1000):
            specs = [
                {"task": "reports.build", "org": ORG, "payload": {"row": i}}
                for i in range(start, min(size, start + 1000))
            ]
            ids += [j.job_id for j in client.submit_many(specs)]
            clock.advance(1)
        with client.store.transaction() as tx:
            for n, job_id in enumerate(ids):
                job = tx.get("jobs", job_id)
                result_id = f"res_{n:026d}"
                tx.put(
                    "jobs",
                    job_id,
                    {
                        **job,
                        "status": "completed",
                        "attempts": 1,
                        "result_id": result_id,
                        "started_at": stamp,
                        "finished_at": stamp,
                        "updated_at": stamp,
                        "fair_tag": None,
                    },
                )
                tx.put(
                    "results",
                    result_id,
                    {
                        "result_id": result_id,
                        "job_id": job_id,
                        "org_id": ORG,
                        "task": "reports.build",
                        "value": {"rows": n, "total": n * 3, "month": "2026-10"},
                        "created_at": stamp,
                        "run": 1,
                        "attempt": 1,
                    },
                )
                for seq, kind in ((2, "started"), (3, "completed")):
                    event_id = f"evt_{n:013d}{seq:013d}"
                    tx.put(
                        "events",
                        event_id,
                        {
                            "event_id": event_id,
                            "job_id": job_id,
                            "org_id": ORG,
                            "event_type": f"async.job.{kind}",
                            "created_at": stamp,
                            "attempt": 1,
                            "run": 1,
                            "seq": seq,
                            "data": {},
                        },
                    )
                note_id = f"ntf_{n:026d}"
                tx.put(
                    "notifications",
                    note_id,
                    {
                        "notification_id": note_id,
                        "job_id": job_id,
                        "org_id": ORG,
                        "event_type": "async.job.completed",
                        "dedupe_key": f"{job_id}:async.job.completed:run-1",
                        "created_at": stamp,
                        "read_at": None,
                        "channel": "in_app",
                    },
                )
        client.store.compact()
        for n in range(200):
            client.submit("reports.build", org=ORG, payload={"after": n})
    middle = len(ids) // 2
    return ids[middle], f"res_{middle:026d}"


# Runs a command and prints its peak resident memory in KB: the kernel's
# figure for a process counts what it was before its exec, so the command is
# started from this small process, not from the benchmark's large one.
PEAK = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one process."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PEAK, *cmd],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.perf_counter() - started
    code, peak_kb = (int(word) for word in out.split())
    if code != 0:
        raise SystemExit(f"{cmd} exited {code}")
    return elapsed, peak_kb / 1024


def first_answer(path: Path, job_id: str, env: dict[str, str]) -> float:
    """Seconds from starting serve to its first 200 for the job."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "asyncjobs", "--store", str(path), "serve"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/analyze/jobs/{job_id}"
        request = urllib.request.Request(url, headers={"X-Org-Id": ORG})
        while time.perf_counter() - started < 60:
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
        raise SystemExit("serve did not answer within 60 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "cold_reads.json")
    )
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folder = Path(tempfile.mkdtemp(prefix="bench-cold-", dir=args.dir))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            path = folder / f"s{size}" / "store.v1.json"
            job_id, result_id = build(path, size)
            row: dict[str, float] = {
                "jobs": size,
                "snapshot_mb": path.stat().st_size / 1e6,
                "journal_mb": Path(f"{path}.journal").stat().st_size / 1e6,
            }
            base = [sys.executable, "-m", "asyncjobs", "--store", str(path)]
            for name in ("status", "result", "events"):
                asked = result_id if name == "result" else job_id
                runs = [
                    run_once(base + [name, asked, "--org", ORG], env)
                    for _ in range(args.runs)
                ]
                row[f"{name}_ms"] = statistics.median(r[0] for r in runs) * 1e3
                row[f"{name}_mb"] = max(r[1] for r in runs)
            row["serve_first_answer_ms"] = first_answer(path, job_id, env) * 1e3
            rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        "| jobs | snapshot MB | status ms (MB) | result ms (MB) | events ms (MB) "
        "| serve's first answer ms |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = [
            f"{r[f'{n}_ms']:.0f} ({r[f'{n}_mb']:.0f})"
            for n in ("status", "result", "events")
        ]
        print(
            f"| {r['jobs']:,} | {r['snapshot_mb']:.0f} | "
            + " | ".join(cells)
            + f" | {r['serve_first_answer_ms']:.0f} |"
        )
    doc = {"benchmark": "cold_reads", "settings": vars(args), "rows": rows}
    write_results(args.output, doc)


if __name__ == "__main__":
    main()

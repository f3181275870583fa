"""Why the SQLite-based peers enqueue faster: the durable write, and the Python around it.

    .venv/bin/python benchmarks/durable_write.py [--count 3000]

Times, per operation on this disk: a 500-byte append + fsync, the same with
fdatasync, an overwrite of zeros already on disk + fdatasync (what SQLite's
WAL does once it wraps around, and what an asyncjobs commit does since its
journal reserves zeros ahead), the overwrite after an fstat, one SQLite
insert in WAL mode with synchronous=FULL, and ``Client.submit`` durable and
with ASYNCJOBS_FSYNC=never (the Python work of a submit, without its fsync).
Writes benchmarks/results/durable_write.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LINE = b"x" * 499 + b"\n"


def per_op_ms(count: int, op: Callable[[int], object]) -> float:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        op(i)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--dir", default=str(ROOT / "runtime"))
    parser.add_argument(
        "--output",
        default=str(ROOT / "benchmarks" / "results" / "durable_write.json"),
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-durable-", dir=args.dir))
    n = args.count
    figures = {}
    try:
        fd = os.open(folder / "append", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        figures["append_fsync_ms"] = per_op_ms(
            n, lambda i: (os.write(fd, LINE), os.fsync(fd))
        )
        os.close(fd)
        fd = os.open(folder / "append2", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        figures["append_fdatasync_ms"] = per_op_ms(
            n, lambda i: (os.write(fd, LINE), os.fdatasync(fd))
        )
        os.close(fd)
        fd = os.open(folder / "inplace", os.O_RDWR | os.O_CREAT)
        os.write(fd, bytes(len(LINE) * (n + 1)))
        os.fsync(fd)
        figures["overwrite_fdatasync_ms"] = per_op_ms(
            n, lambda i: (os.pwrite(fd, LINE, i * len(LINE)), os.fdatasync(fd))
        )
        # The same with an fstat first: on Linux 6.13+ it makes the next
        # write log the inode again (why the journal is never stat'ed).
        figures["fstat_overwrite_fsync_ms"] = per_op_ms(
            n,
            lambda i: (
                os.fstat(fd),
                os.pwrite(fd, LINE, i * len(LINE)),
                os.fsync(fd),
            ),
        )
        os.close(fd)
        conn = sqlite3.connect(folder / "s.db", isolation_level=None)
        conn.execute("pragma journal_mode=wal")
        conn.execute("pragma synchronous=FULL")
        conn.execute("create table t(x)")
        figures["sqlite_wal_full_insert_ms"] = per_op_ms(
            n, lambda i: conn.execute("insert into t values (?)", (LINE,))
        )
        conn.close()
        from asyncjobs import Client

        os.environ["ASYNCJOBS_FSYNC"] = "always"
        with Client(folder / "durable" / "store.v1.json") as client:
            client.init_store()
            figures["submit_ms"] = per_op_ms(
                n, lambda i: client.submit("noop", org="bench", payload={"n": i})
            )
        os.environ["ASYNCJOBS_FSYNC"] = "never"
        with Client(folder / "store" / "store.v1.json") as client:
            client.init_store()
            figures["submit_without_fsync_ms"] = per_op_ms(
                n, lambda i: client.submit("noop", org="bench", payload={"n": i})
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for name, value in figures.items():
        print(f"{name:28} p50 {value:.3f} ms")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps({"benchmark": "durable_write", **figures}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()

"""What the benchmarks share."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of the samples, by the nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# A task app with one no-op task, written beside a store for worker runs.
NOOP_APP = """
import asyncjobs.tasks
tasks = asyncjobs.tasks.TaskRegistry()

@tasks.task(name="noop")
def noop(**payload):
    return None
"""


def burst_worker(store: Path, concurrency: int) -> list[str]:
    """The command of a burst worker running NOOP_APP (saved as benchapp.py)."""
    return [sys.executable, "-m", "asyncjobs", "--store", str(store), "worker"] + [
        "--app",
        "benchapp:tasks",
        "--burst",
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
    ]


def write_results(path: str | Path, doc: dict) -> None:
    """A benchmark's figures as JSON at ``path`` (benchmarks/results/ by default)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")

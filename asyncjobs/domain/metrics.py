"""Prometheus text exposition, and the job duration histogram kept in the store.

Counters and histogram counts come from records the store keeps cumulatively
(updated in the same transaction as the job outcome), so they never go down
when retention deletes jobs. Labels carry route templates and queue, status
and breaker names, never an org id.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import Any

DURATION = "job_duration_seconds"
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def empty_histogram(
    name: str = DURATION, buckets: tuple[float, ...] = DURATION_BUCKETS
) -> dict[str, Any]:
    return {"name": name, "buckets": [0] * (len(buckets) + 1), "sum": 0.0, "count": 0}


def observation(
    value: float, buckets: tuple[float, ...] = DURATION_BUCKETS
) -> dict[str, Any]:
    """What one observation adds to a histogram record (``Transaction.increment``)."""
    counts = [0] * (len(buckets) + 1)
    counts[bisect.bisect_left(buckets, value)] = 1
    return {"buckets": counts, "sum": value, "count": 1}


def observe(
    record: Mapping[str, Any],
    value: float,
    buckets: tuple[float, ...] = DURATION_BUCKETS,
) -> dict[str, Any]:
    """A histogram record with one more observation (counts per bucket, not cumulative)."""
    counts = list(record["buckets"])
    counts[bisect.bisect_left(buckets, value)] += 1
    return {
        **record,
        "buckets": counts,
        "sum": record["sum"] + value,
        "count": record["count"] + 1,
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


class Exposition:
    """Builds the text format: ``# HELP``, ``# TYPE``, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(
        self,
        name: str,
        help_text: str,
        buckets: tuple[float, ...],
        series: Iterable[tuple[Mapping[str, str], Mapping[str, Any]]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for labels, record in series:
            running = 0
            for bound, count in zip((*buckets, math.inf), record["buckets"]):
                running += count
                le = "+Inf" if math.isinf(bound) else repr(bound)
                self.lines.append(
                    f"{name}_bucket{_labels({**labels, 'le': le})} {running}"
                )
            self.lines.append(
                f"{name}_sum{_labels(labels)} {_number(float(record['sum']))}"
            )
            self.lines.append(f"{name}_count{_labels(labels)} {record['count']}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

"""The task catalog: what a producer without the app knows of its tasks.

Every worker, when it starts, publishes the tasks of its app: one record of
kind ``tasks`` per task, keyed by the task's name, replacing that task's
record and leaving every other task's alone (apps may share a store)::

    {"name": "reports.build", "queue": "reports", "priority": 7,
     "max_retries": 3, "retry_backoff": "exponential" | null,
     "retry_delay": 1.0 | null, "retry_delays": [60.0, 300.0] | null,
     "retry_max_delay": 3600.0 | null, "retry_jitter": false,
     "timeout": 300.0 | null, "soft_timeout": 270.0 | null,
     "breaker": "warehouse" | null, "layer": "reports" | null,
     "periodic": null | {"every": 3600 | null, "cron": "0 2 * * *" | null,
                         "org": "system", "payload": {}},
     "published_at": "2026-11-01T12:00:00.000000Z", "published_by": "wrk_..."}

The three computed-backoff fields are null when ``retry_delays`` lists the
waits. Retention never deletes these records.

A submission that names no queue or priority takes the task's: from the
app when one is named, else from this catalog, else queue ``default`` and
priority 5. A task that is in neither a named app nor a non-empty catalog
is refused unless ``allow_unknown``; with no app and an empty catalog,
every task is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .. import clock
from ..errors import InvalidInput, StoreCorrupt

KIND = "tasks"
DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 5
FIELDS = (
    "name",
    "queue",
    "priority",
    "max_retries",
    "retry_backoff",
    "retry_delay",
    "retry_delays",
    "retry_max_delay",
    "retry_jitter",
    "timeout",
    "soft_timeout",
    "breaker",
    "layer",
    "periodic",
    "published_at",
    "published_by",
)
APP, CATALOG = "app", "catalog"  # where a submission's task declarations come from


def published(
    described: Iterable[Mapping[str, Any]], *, now: datetime, worker_id: str
) -> list[dict[str, Any]]:
    """Catalog records of tasks as ``TaskRegistry.describe`` gives them, stamped."""
    stamp = clock.to_iso(now)
    return [
        {**task, "published_at": stamp, "published_by": worker_id} for task in described
    ]


def routing(
    task: str,
    declaration: Mapping[str, Any] | None,
    *,
    source: str | None,
    allow_unknown: bool,
) -> tuple[str, int]:
    """The queue and priority a job of ``task`` gets when its submission names neither.

    ``declaration`` is the task's record in ``source`` (``APP`` or
    ``CATALOG``), None when it has none there; ``source`` is None when
    there is nothing to consult (no app and an empty catalog). Raises
    InvalidInput (``unknown task NAME``) for a task its source lacks, unless
    ``allow_unknown``; StoreCorrupt for a catalog record without them.
    """
    if declaration is not None:
        queue, priority = declaration.get("queue"), declaration.get("priority")
        if not isinstance(queue, str) or type(priority) is not int:
            raise StoreCorrupt(
                f"task {task} in the catalog has no queue or priority; "
                "run asyncjobs store check"
            )
        return queue, priority
    if source is not None and not allow_unknown:
        where = (
            "the app declares no such task"
            if source == APP
            else "no worker has published it to the task catalog"
        )
        raise InvalidInput(
            f"unknown task {task}: {where} (allow_unknown, or --allow-unknown, "
            "submits it anyway)"
        )
    return DEFAULT_QUEUE, DEFAULT_PRIORITY


def problems(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line for each catalog record that lacks a field of the shape above."""
    out = []
    for record in records:
        missing = [f for f in FIELDS if f not in record]
        if missing:
            out.append(
                f"task {record.get('name')} in the catalog lacks "
                + ", ".join(repr(f) for f in missing)
            )
    return out

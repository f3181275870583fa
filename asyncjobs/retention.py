"""TTL retention: which records of terminal jobs go, as a plain function of records and ``now``.

Only records of terminal jobs (``completed``, ``failed``, ``canceled``) are
touched. A record is expired when its age (``now`` minus its timestamp) is
greater than its TTL:

| kind | timestamp | TTL |
| --- | --- | --- |
| results | ``created_at`` | ``results_ttl_seconds`` |
| events | ``created_at`` | ``events_ttl_seconds`` |
| notifications | ``created_at`` | ``notifications_ttl_seconds`` (off unless given) |
| jobs | ``finished_at`` | ``jobs_ttl_seconds`` (off unless given): the job goes with everything of it |

A record without a readable timestamp is kept and counted in
``skipped_missing_timestamp``. The report (``asyncjobs.retention.v1``) is a
pure function of the store and ``now``: two dry runs with the same ``now``
give byte-identical artifacts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import clock

SCHEMA = "asyncjobs.retention.v1"
TERMINAL = frozenset({"completed", "failed", "canceled"})
KINDS = (("results", "result_id"), ("events", "event_id"),
         ("notifications", "notification_id"), ("jobs", "job_id"))


@dataclass
class Plan:
    """What a cleanup deletes, and what it found."""

    deleted: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k, _ in KINDS})
    totals: dict[str, int] = field(default_factory=lambda: {k: 0 for k, _ in KINDS})
    terminal_job_count: int = 0
    skipped_missing_timestamp: int = 0
    files: list[str] = field(default_factory=list)  # result value files to delete after commit
    pruned_notifications_of: set[str] = field(default_factory=set)  # jobs that stay


def _age_over(stamp: Any, ttl: float | None, now: datetime) -> bool | None:
    """True/False when the record is/isn't expired; None when it has no readable time."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = clock.parse_iso(stamp)
    except Exception:
        return None
    assert ttl is not None
    return (now - moment).total_seconds() > ttl


def plan(
    records: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    now: datetime,
    results_ttl_seconds: float,
    events_ttl_seconds: float,
    notifications_ttl_seconds: float | None = None,
    jobs_ttl_seconds: float | None = None,
) -> Plan:
    """Decide what to delete; ``records`` maps each kind to its records."""
    out = Plan()
    jobs = list(records.get("jobs", ()))
    out.totals["jobs"] = len(jobs)
    terminal = {j["job_id"] for j in jobs if j.get("status") in TERMINAL}
    out.terminal_job_count = len(terminal)
    if jobs_ttl_seconds is not None:
        for job in jobs:
            if job["job_id"] not in terminal:
                continue
            expired = _age_over(job.get("finished_at"), jobs_ttl_seconds, now)
            if expired is None:
                out.skipped_missing_timestamp += 1
            elif expired:
                out.deleted["jobs"].add(job["job_id"])
    gone_jobs = out.deleted["jobs"]
    ttls = {"results": results_ttl_seconds, "events": events_ttl_seconds,
            "notifications": notifications_ttl_seconds}
    for kind, key in KINDS[:3]:
        ttl = ttls[kind]
        for record in records.get(kind, ()):
            out.totals[kind] += 1
            job_id = record.get("job_id")
            if job_id not in terminal:
                continue  # a live job's record, or one of no job: never touched here
            if job_id in gone_jobs:
                expired: bool | None = True
            elif ttl is None:
                continue
            else:
                expired = _age_over(record.get("created_at"), ttl, now)
            if expired is None:
                out.skipped_missing_timestamp += 1
            elif expired:
                out.deleted[kind].add(record[key])
                if kind == "results" and record.get("value_file"):
                    out.files.append(record["value_file"])
                if kind == "notifications" and job_id not in gone_jobs:
                    out.pruned_notifications_of.add(job_id)
    out.files.sort()
    return out


def report(
    result: Plan,
    *,
    dry_run: bool,
    store_file: str,
    now: datetime,
    results_ttl_seconds: float,
    events_ttl_seconds: float,
    notifications_ttl_seconds: float | None,
    jobs_ttl_seconds: float | None,
) -> dict[str, Any]:
    """The audit document: the same store and ``now`` always give the same one."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "dry_run": dry_run,
        "store_file": store_file,
        "now": clock.to_iso(now),
        "results_ttl_seconds": results_ttl_seconds,
        "events_ttl_seconds": events_ttl_seconds,
        "notifications_ttl_seconds": notifications_ttl_seconds,
        "jobs_ttl_seconds": jobs_ttl_seconds,
        "terminal_job_count": result.terminal_job_count,
    }
    for kind, _ in KINDS:
        deleted = sorted(result.deleted[kind])
        doc[kind] = {
            "delete_count": len(deleted),
            "kept_count": result.totals[kind] - len(deleted),
            "deleted_ids": deleted,
        }
    doc["skipped_missing_timestamp"] = result.skipped_missing_timestamp
    return doc

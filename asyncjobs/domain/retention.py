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
| workers | ``last_seen_at`` | ``workers_ttl_seconds`` (7 days unless given): records of workers not seen since |

A record without a readable timestamp is kept and counted in
``skipped_missing_timestamp``. Pruning notifications raises the store-wide
cutoff below which a terminal job may lack its notification on purpose. The report (``asyncjobs.retention.v1``) is a
pure function of the store and ``now``: two dry runs with the same ``now``
give byte-identical artifacts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import clock

SCHEMA = "asyncjobs.retention.v1"
PRUNED_CUTOFF = (
    "retention_notifications_pruned_before"  # a counters record: {"at": ISO}
)
TERMINAL = frozenset({"completed", "failed", "canceled"})
DEFAULT_WORKERS_TTL_SECONDS = 7 * 86400
KINDS = (
    ("results", "result_id"),
    ("events", "event_id"),
    ("notifications", "notification_id"),
    ("jobs", "job_id"),
)


@dataclass(frozen=True)
class Policy:
    """The TTLs of one cleanup, in seconds (None: that kind is kept)."""

    results_ttl_seconds: float
    events_ttl_seconds: float
    notifications_ttl_seconds: float | None = None
    jobs_ttl_seconds: float | None = None
    workers_ttl_seconds: float = DEFAULT_WORKERS_TTL_SECONDS

    def ttls(self) -> dict[str, float | None]:
        """The TTLs by name, as ``plan`` and ``report`` take them."""
        return dict(vars(self))


@dataclass
class Plan:
    """What a cleanup deletes, and what it found."""

    deleted: dict[str, set[str]] = field(
        default_factory=lambda: {k: set() for k, _ in KINDS}
    )
    totals: dict[str, int] = field(default_factory=lambda: {k: 0 for k, _ in KINDS})
    terminal_job_count: int = 0
    skipped_missing_timestamp: int = 0
    files: list[str] = field(
        default_factory=list
    )  # result value files to delete after commit
    notifications_cutoff: str | None = None  # notifications before this were pruned
    workers_deleted: set[str] = field(default_factory=set)
    workers_total: int = 0


def is_expired(stamp: Any, cutoff: str, cutoff_time: datetime) -> bool | None:
    """True/False when the record is/isn't older than the cutoff; None without a readable time.

    Times this version writes (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) compare as
    strings; any other form is parsed.
    """
    if not isinstance(stamp, str) or not stamp:
        return None
    if len(stamp) == 27 and stamp[19] == "." and stamp[26] == "Z":
        return stamp < cutoff
    try:
        return clock.parse_iso(stamp) < cutoff_time
    except Exception:
        return None


def cutoff_of(now: datetime, ttl: float) -> tuple[str, datetime]:
    """Records with a time before this are older than ``ttl`` seconds at ``now``."""
    moment = now - timedelta(seconds=ttl)
    return clock.to_iso(moment), moment


def plan(
    records: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    now: datetime,
    results_ttl_seconds: float,
    events_ttl_seconds: float,
    notifications_ttl_seconds: float | None = None,
    jobs_ttl_seconds: float | None = None,
    workers_ttl_seconds: float = DEFAULT_WORKERS_TTL_SECONDS,
) -> Plan:
    """Decide what to delete; ``records`` maps each kind to its records."""
    out = Plan()
    cutoff, cutoff_time = cutoff_of(now, workers_ttl_seconds)
    for worker in records.get("workers", ()):
        out.workers_total += 1
        expired = is_expired(worker.get("last_seen_at"), cutoff, cutoff_time)
        if expired is None:
            out.skipped_missing_timestamp += 1
        elif expired:
            out.workers_deleted.add(worker["worker_id"])
    jobs = list(records.get("jobs", ()))
    out.totals["jobs"] = len(jobs)
    terminal = {j["job_id"] for j in jobs if j.get("status") in TERMINAL}
    out.terminal_job_count = len(terminal)
    if jobs_ttl_seconds is not None:
        cutoff, cutoff_time = cutoff_of(now, jobs_ttl_seconds)
        for job in jobs:
            if job["job_id"] not in terminal:
                continue
            expired = is_expired(job.get("finished_at"), cutoff, cutoff_time)
            if expired is None:
                out.skipped_missing_timestamp += 1
            elif expired:
                out.deleted["jobs"].add(job["job_id"])
    gone_jobs = out.deleted["jobs"]
    ttls = {
        "results": results_ttl_seconds,
        "events": events_ttl_seconds,
        "notifications": notifications_ttl_seconds,
    }
    if notifications_ttl_seconds is not None:
        out.notifications_cutoff = cutoff_of(now, notifications_ttl_seconds)[0]
    for kind, key in KINDS[:3]:
        ttl = ttls[kind]
        cutoff, cutoff_time = cutoff_of(now, ttl) if ttl is not None else ("", now)
        deleted = out.deleted[kind]
        total = skipped = 0
        for record in records.get(kind, ()):  # the hot loop: 100,000s of records
            total += 1
            job_id = record.get("job_id")
            if job_id not in terminal:
                continue  # a live job's record, or one of no job: never touched here
            if job_id in gone_jobs:
                expired: bool | None = True
            elif ttl is None:
                continue
            else:
                stamp = record.get("created_at")
                if (
                    type(stamp) is str
                    and len(stamp) == 27
                    and stamp[19] == "."
                    and stamp[26] == "Z"
                ):
                    expired = stamp < cutoff  # the form this version writes
                else:
                    expired = is_expired(stamp, cutoff, cutoff_time)
            if expired is None:
                skipped += 1
            elif expired:
                deleted.add(record[key])
                if kind == "results" and record.get("value_file"):
                    out.files.append(record["value_file"])
        out.totals[kind] = total
        out.skipped_missing_timestamp += skipped
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
    workers_ttl_seconds: float = DEFAULT_WORKERS_TTL_SECONDS,
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
        "workers_ttl_seconds": workers_ttl_seconds,
        "terminal_job_count": result.terminal_job_count,
    }
    for kind, _ in KINDS:
        deleted = sorted(result.deleted[kind])
        doc[kind] = {
            "delete_count": len(deleted),
            "kept_count": result.totals[kind] - len(deleted),
            "deleted_ids": deleted,
        }
    workers = sorted(result.workers_deleted)
    doc["workers"] = {
        "delete_count": len(workers),
        "kept_count": result.workers_total - len(workers),
        "deleted_ids": workers,
    }
    doc["skipped_missing_timestamp"] = result.skipped_missing_timestamp
    return doc

"""Rules of a sound store above the file level: records that point nowhere.

``store check`` runs these over the records a backend hands it, after the
backend itself found its files sound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .store import Record


def reference_problems(records: Mapping[str, Iterable[Record]]) -> list[str]:
    """One line for each record whose ``job_id`` names no job, and each bad key."""
    problems: list[str] = []
    job_ids = set()
    for job in records.get("jobs", ()):
        job_id = job.get("job_id")
        if not isinstance(job_id, str):
            problems.append(f"a job record has no job_id: {_short(job)}")
        job_ids.add(job_id)
    for kind, key in (
        ("results", "result_id"),
        ("events", "event_id"),
        ("notifications", "notification_id"),
    ):
        for record in records.get(kind, ()):
            if record.get("job_id") is None and str(
                record.get("event_type", "")
            ).startswith("async.breaker."):
                continue  # a breaker changed by hand belongs to no job
            if record.get("job_id") not in job_ids:
                problems.append(
                    f"{kind[:-1]} {record.get(key)} belongs to job "
                    f"{record.get('job_id')}, which is not in the store"
                )
    return problems


def _short(record: Record) -> str:
    text = repr(record)
    return text if len(text) <= 80 else text[:77] + "..."

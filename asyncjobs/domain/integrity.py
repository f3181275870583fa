"""Rules of a sound store above the file level: records that point nowhere.

``store check`` runs these over the records a backend hands it, after the
backend itself found its files sound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from ..errors import StoreCorrupt
from ..records import Event, Job, Notification, Record, Result, StoredRecord, WorkerInfo

_CLASSES: dict[str, type[StoredRecord]] = {
    cls.KIND: cls for cls in (Job, Result, Event, Notification, WorkerInfo)
}


def _required(cls: type[StoredRecord]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def shape_problems(records: Mapping[str, Iterable[Record]]) -> list[str]:
    """One line for each record that lacks a field every record of its kind has."""
    problems: list[str] = []
    for kind, recs in records.items():
        cls = _CLASSES.get(kind)
        if cls is None:
            continue
        required = _required(cls)
        for record in recs:
            name = f"{kind[:-1]} {record.get(cls.KEY)}"
            missing = [f for f in required if f not in record]
            if missing:
                problems.append(f"{name} lacks {', '.join(repr(f) for f in missing)}")
                continue
            try:
                cls.from_dict(record)
            except StoreCorrupt as exc:
                problems.append(exc.message)
    return problems


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


def lane_problems(records: Iterable[Record]) -> list[str]:
    """One line for each ``lanes`` record (next fair tags) of the wrong shape."""
    problems: list[str] = []
    for record in records:
        queue, priority = record.get("queue"), record.get("priority")
        org, tag = record.get("org_id"), record.get("next_tag")
        if not (
            isinstance(queue, str)
            and isinstance(org, str)
            and all(
                isinstance(n, int) and not isinstance(n, bool) for n in (priority, tag)
            )
            and tag >= 0
        ):
            problems.append(f"a lanes record is malformed: {_short(record)}")
    return problems


def _short(record: Record) -> str:
    text = repr(record)
    return text if len(text) <= 80 else text[:77] + "..."

"""The job state machine: plain functions of records and ``now``.

::

    queued --claim--> running --ok--> completed
       ^                 |----error, retries left--> queued (run_after = backoff)
       |                 |----error, none left-----> failed
       |                 '----lease expired--------> queued (attempt counted)
       '--retry <-- failed | canceled | completed       queued --cancel--> canceled

Each transition returns the new job and the records it adds (an event, and
for a terminal state the in-app notification). ``Client`` saves them in one
transaction. Nothing here reads the clock or the store.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from . import clock, ids
from .errors import Conflict
from .records import Event, EventType, Job, JobStatus, Notification


def new_event(job: Job, event_type: EventType, now: datetime, **data: Any) -> Event:
    """An event of a job, stamped with its attempt and run."""
    return Event(
        event_id=ids.new_id("evt", now),
        job_id=job.job_id,
        org_id=job.org_id,
        event_type=event_type.value,
        created_at=clock.to_iso(now),
        attempt=job.attempts,
        run=job.run,
        data=data,
    )


def dedupe_key(job: Job, event_type: EventType) -> str:
    """The key that makes one notification per terminal transition of a run."""
    return f"{job.job_id}:{event_type.value}:run-{job.run}"


def new_notification(job: Job, event_type: EventType, now: datetime) -> Notification:
    return Notification(
        notification_id=ids.new_id("ntf", now),
        job_id=job.job_id,
        org_id=job.org_id,
        event_type=event_type.value,
        dedupe_key=dedupe_key(job, event_type),
        created_at=clock.to_iso(now),
    )


def submit(
    *,
    task: str,
    org: str,
    payload: dict[str, Any],
    queue: str,
    priority: int,
    run_after: datetime,
    idempotency_key: str | None,
    max_retries: int | None,
    now: datetime,
) -> tuple[Job, Event]:
    """A new queued job and its ``async.job.queued`` event (inputs already valid)."""
    stamp = clock.to_iso(now)
    job = Job(
        job_id=ids.new_id("job", now),
        org_id=org,
        task=task,
        queue=queue,
        priority=priority,
        status=JobStatus.QUEUED,
        payload=payload,
        created_at=stamp,
        updated_at=stamp,
        run_after=clock.to_iso(max(run_after, now)),
        max_retries=max_retries,
        idempotency_key=idempotency_key,
    )
    delay_seconds = max(0.0, (run_after - now).total_seconds())
    return job, new_event(job, EventType.QUEUED, now, reason="submit", delay_seconds=delay_seconds)


def cancel(job: Job, *, now: datetime) -> tuple[Job, Event, Notification]:
    """queued -> canceled; any other state is a Conflict."""
    if job.status is not JobStatus.QUEUED:
        raise Conflict(f"job {job.job_id} is {job.status.value}; only a queued job can be canceled")
    stamp = clock.to_iso(now)
    job = dataclasses.replace(
        job, status=JobStatus.CANCELED, updated_at=stamp, finished_at=stamp
    )
    return (
        job,
        new_event(job, EventType.CANCELED, now),
        new_notification(job, EventType.CANCELED, now),
    )


def retry(job: Job, *, now: datetime) -> tuple[Job, Event]:
    """failed | canceled | completed -> queued, as the next run of the job."""
    if not job.status.terminal:
        raise Conflict(
            f"job {job.job_id} is {job.status.value}; only a failed, canceled or "
            "completed job can be retried"
        )
    stamp = clock.to_iso(now)
    job = dataclasses.replace(
        job,
        status=JobStatus.QUEUED,
        run=job.run + 1,
        attempts=0,
        error=None,
        result_id=None,
        worker_id=None,
        lease_expires_at=None,
        started_at=None,
        finished_at=None,
        run_after=stamp,
        updated_at=stamp,
    )
    return job, new_event(job, EventType.QUEUED, now, reason="retry")


def run_after(now: datetime, *, delay: float = 0.0, at: datetime | None = None) -> datetime:
    """When a new job may first run: ``at``, or ``delay`` seconds from ``now``."""
    return at if at is not None else now + timedelta(seconds=delay)

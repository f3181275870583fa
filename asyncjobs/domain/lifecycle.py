"""The job state machine: plain functions of records and ``now``.

::

    queued --claim--> running --ok--> completed
       ^                 |----error, retries left--> queued (run_after = backoff)
       |                 |----error, none left-----> failed
       |                 |----cancel requested-----> canceled
       |                 '----lease expired--------> queued (attempt counted)
       '--retry <-- failed | canceled | completed       queued --cancel--> canceled

A cancel of a running job is a request (``cancel_requested_at``) that its
worker acts on; once committed it wins over whatever that attempt reports
later, and an outcome committed before it stands (``cancel_running``).

Each transition returns the new job and the records it adds (an event, and
for a terminal state the in-app notification). ``Client`` saves them in one
transaction. Nothing here reads the clock or the store.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from .. import clock, ids, records
from ..errors import Conflict, LeaseExpired
from ..records import Event, EventType, Job, JobStatus, Notification


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
    return dedupe_key_of(job.job_id, event_type.value, job.run)


def dedupe_key_of(job_id: str, event_type: str, run: int) -> str:
    return f"{job_id}:{event_type}:run-{run}"


TERMINAL_EVENT_OF = {
    "completed": EventType.COMPLETED.value,
    "failed": EventType.FAILED.value,
    "canceled": EventType.CANCELED.value,
}


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
    return job, new_event(
        job, EventType.QUEUED, now, reason="submit", delay_seconds=delay_seconds
    )


_TERMINAL_EVENTS = {
    JobStatus.COMPLETED: EventType.COMPLETED,
    JobStatus.FAILED: EventType.FAILED,
    JobStatus.CANCELED: EventType.CANCELED,
}


def _terminal(
    job: Job, status: JobStatus, now: datetime, *, data: dict[str, Any], **changes: Any
) -> tuple[Job, list[Any]]:
    """A job reaching a terminal state, with its event and its one notification."""
    stamp = clock.to_iso(now)
    job = records.replace(
        job,
        status=status,
        lease_expires_at=None,
        finished_at=stamp,
        updated_at=stamp,
        **changes,
    )
    event_type = _TERMINAL_EVENTS[status]
    return job, [
        new_event(job, event_type, now, **data),
        new_notification(job, event_type, now),
    ]


def cancel(job: Job, *, now: datetime) -> tuple[Job, list[Any]]:
    """queued -> canceled; running -> a cancel request; a terminal job is a Conflict.

    A running job stays running until its worker stops it (``cancel_running``);
    asking again while the request is pending changes nothing and adds no record.
    """
    if job.status is JobStatus.QUEUED:
        return _terminal(job, JobStatus.CANCELED, now, data={})
    if job.status is JobStatus.RUNNING:
        if job.cancel_requested_at is not None:
            return job, []
        stamp = clock.to_iso(now)
        job = records.replace(job, cancel_requested_at=stamp, updated_at=stamp)
        return job, [
            new_event(job, EventType.CANCEL_REQUESTED, now, worker_id=job.worker_id)
        ]
    raise Conflict(
        f"job {job.job_id} is {job.status.value}; only a queued or running job "
        "can be canceled"
    )


def cancel_running(
    job: Job, *, via: str, now: datetime, discarded: str | None = None
) -> tuple[Job, list[Any]]:
    """running, with a cancel request -> canceled; the attempt is not a failure.

    ``via`` says what ended the attempt: ``worker`` (it stopped the task, or the
    task's own outcome arrived after the request: ``discarded`` is then
    ``result`` or ``error``), ``lease_expired``, ``worker_shutdown`` or
    ``not_started`` (a worker gave back a job it had claimed ahead).
    """
    data = {"requested_at": job.cancel_requested_at, "via": via}
    if discarded is not None:
        data["discarded"] = discarded
    return _terminal(job, JobStatus.CANCELED, now, data=data)


def retry(job: Job, *, now: datetime) -> tuple[Job, Event]:
    """failed | canceled | completed -> queued, as the next run of the job."""
    if not job.status.terminal:
        raise Conflict(
            f"job {job.job_id} is {job.status.value}; only a failed, canceled or "
            "completed job can be retried"
        )
    stamp = clock.to_iso(now)
    job = records.replace(
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
        cancel_requested_at=None,
        run_after=stamp,
        updated_at=stamp,
        fair_tag=None,  # a new place in the order, given as it is queued
    )
    return job, new_event(job, EventType.QUEUED, now, reason="retry")


def run_after(
    now: datetime, *, delay: float = 0.0, at: datetime | None = None
) -> datetime:
    """When a new job may first run: ``at``, or ``delay`` seconds from ``now``."""
    return at if at is not None else now + timedelta(seconds=delay)


# -- running -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """What a claim hands a worker: the fencing token of one attempt."""

    job_id: str
    org_id: str
    run: int
    attempt: int
    worker_id: str


def token_of(job: Job) -> Token:
    assert job.worker_id is not None
    return Token(job.job_id, job.org_id, job.run, job.attempts, job.worker_id)


def stop_requested(job: Job, token: Token) -> bool:
    """Whether the token's attempt was asked to stop: its worker kills the task.

    True while the attempt runs with a cancel request, and also once the job
    was canceled without that worker (its lease ran out): a worker that comes
    back from a pause then stops a task whose job is over.
    """
    return (
        job.cancel_requested_at is not None
        and job.status in (JobStatus.RUNNING, JobStatus.CANCELED)
        and job.run == token.run
        and job.attempts == token.attempt
        and job.worker_id == token.worker_id
    )


def holds(job: Job, token: Token) -> bool:
    """Whether the token's attempt is still the job's live attempt (fencing)."""
    return (
        job.status is JobStatus.RUNNING
        and job.run == token.run
        and job.attempts == token.attempt
        and job.worker_id == token.worker_id
    )


def claim(
    job: Job, *, worker_id: str, lease_seconds: float, max_retries: int, now: datetime
) -> tuple[Job, Event]:
    """queued -> running for one more attempt, leased to ``worker_id``."""
    if job.status is not JobStatus.QUEUED:
        raise Conflict(
            f"job {job.job_id} is {job.status.value}; only a queued job can run"
        )
    stamp = clock.to_iso(now)
    job = records.replace(
        job,
        status=JobStatus.RUNNING,
        attempts=job.attempts + 1,
        max_retries=max_retries if job.max_retries is None else job.max_retries,
        worker_id=worker_id,
        lease_expires_at=clock.to_iso(now + timedelta(seconds=lease_seconds)),
        started_at=stamp,
        updated_at=stamp,
    )
    return job, new_event(job, EventType.STARTED, now, worker_id=worker_id)


def renew(job: Job, *, lease_seconds: float, now: datetime) -> Job:
    """Extend a live lease (a heartbeat)."""
    return records.replace(
        job, lease_expires_at=clock.to_iso(now + timedelta(seconds=lease_seconds))
    )


def lease_expired(job: Job, now: datetime) -> bool:
    return (
        job.status is JobStatus.RUNNING
        and job.lease_expires_at is not None
        and job.lease_expires_at < clock.to_iso(now)
    )


def complete(job: Job, *, result_id: str, now: datetime) -> tuple[Job, list[Any]]:
    """running -> completed with its result; the event and the notification."""
    return _terminal(
        job,
        JobStatus.COMPLETED,
        now,
        data={"result_id": result_id},
        result_id=result_id,
        error=None,
    )


def backoff_seconds(
    strategy: str, delay: float, max_delay: float, attempt: int, jitter: float | None
) -> float:
    """Seconds before the next attempt after ``attempt`` failed.

    ``exponential``: delay x 2^(attempt-1); ``linear``: delay x attempt;
    ``fixed``: delay; capped at ``max_delay``. With ``jitter`` (a fraction in
    [0, 1) drawn by the caller) the wait is spread over [half, all] of that.
    """
    if strategy == "exponential":
        seconds = delay * 2 ** min(attempt - 1, 62)
    elif strategy == "linear":
        seconds = delay * attempt
    else:
        seconds = delay
    seconds = min(seconds, max_delay)
    if jitter is not None:
        seconds *= 0.5 + 0.5 * jitter
    return seconds


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a failed attempt waits before the next: a computed backoff, or a list.

    With ``delays``, retry n waits ``delays[n-1]`` seconds exactly, and
    retries past the end of the list wait its last delay; ``backoff``,
    ``delay`` and ``max_delay`` are then unused. ``jitter`` spreads either
    kind of wait over [half, all] of it.
    """

    backoff: str = "exponential"  # exponential | linear | fixed
    delay: float = 1.0
    max_delay: float = 3600.0
    delays: tuple[float, ...] | None = None
    jitter: bool = False


NO_RETRY_WAIT = RetryPolicy("fixed", 0.0, 0.0)  # a job whose task is unknown


def retry_wait(policy: RetryPolicy, attempt: int, jitter: float | None) -> float:
    """Seconds before the next attempt after ``attempt`` (1, 2, ...) failed.

    ``jitter`` is a fraction in [0, 1) the caller drew; it counts only when
    the policy has ``jitter`` on.
    """
    fraction = jitter if policy.jitter else None
    if policy.delays is None:
        return backoff_seconds(
            policy.backoff, policy.delay, policy.max_delay, attempt, fraction
        )
    seconds = policy.delays[min(max(attempt, 1), len(policy.delays)) - 1]
    if fraction is not None:
        seconds *= 0.5 + 0.5 * fraction
    return seconds


def retry_at(
    policy: RetryPolicy, attempt: int, now: datetime, jitter: float | None = None
) -> datetime:
    """When the job runs again if ``attempt`` fails at ``now`` (retries left)."""
    return now + timedelta(seconds=retry_wait(policy, attempt, jitter))


def fail_attempt(
    job: Job,
    *,
    error: dict[str, Any],
    retryable: bool,
    retry: RetryPolicy,
    jitter: float | None,
    now: datetime,
) -> tuple[Job, list[Any]]:
    """A failed attempt: queued again after its wait (``retry_at``), or failed."""
    if retryable and _retries_left(job):
        wait = retry_wait(retry, job.attempts, jitter)
        job = _requeue(job, now, after_seconds=wait, error=error)
        return job, [
            new_event(
                job,
                EventType.RETRY_SCHEDULED,
                now,
                error_type=error.get("type"),
                message=error.get("message"),
                delay_seconds=round(wait, 6),
                run_after=job.run_after,
            )
        ]
    return _failed(job, error, now)


def _retries_left(job: Job) -> bool:
    """Whether the job may run again after its current attempt (max_retries resolved)."""
    return job.attempts <= (job.max_retries if job.max_retries is not None else 0)


def _requeue(
    job: Job, now: datetime, *, after_seconds: float = 0.0, **changes: Any
) -> Job:
    """running -> queued, leased to nobody, runnable ``after_seconds`` from ``now``.

    Without a fair tag: it gets a new one when it is runnable (scheduling.py).
    """
    return records.replace(
        job,
        status=JobStatus.QUEUED,
        worker_id=None,
        lease_expires_at=None,
        run_after=clock.to_iso(now + timedelta(seconds=after_seconds)),
        updated_at=clock.to_iso(now),
        fair_tag=None,
        **changes,
    )


def _failed(job: Job, error: dict[str, Any], now: datetime) -> tuple[Job, list[Any]]:
    data = {"error_type": error.get("type"), "message": error.get("message")}
    return _terminal(job, JobStatus.FAILED, now, data=data, error=error)


def expire_lease(job: Job, *, now: datetime) -> tuple[Job, list[Any]]:
    """A running job whose lease ran out: the attempt counts; queued again or failed.

    A job with a cancel request ends canceled instead: it never runs again.
    """
    expired = new_event(
        job,
        EventType.LEASE_EXPIRED,
        now,
        worker_id=job.worker_id,
        lease_expires_at=job.lease_expires_at,
    )
    if job.cancel_requested_at is not None:
        job, added = cancel_running(job, via="lease_expired", now=now)
        return job, [expired, *added]
    if not _retries_left(job):
        error = {
            "type": LeaseExpired.__name__,
            "message": f"the lease of attempt {job.attempts} expired (worker "
            f"{job.worker_id} stopped heartbeating) and no retries are left",
        }
        job, added = _failed(job, error, now)
        return job, [expired, *added]
    return _requeue(job, now), [expired]


def release(
    job: Job, *, now: datetime, reason: str = "worker_shutdown"
) -> tuple[Job, list[Any]]:
    """A worker gives a running job back: queued at once, the attempt not counted.

    ``reason``: ``worker_shutdown`` (a stopping worker), or ``not_started``
    (a job it claimed ahead and will not start soon). A job with a cancel
    request ends canceled instead.
    """
    if job.cancel_requested_at is not None:
        return cancel_running(job, via=reason, now=now)
    released_by = job.worker_id
    job = _requeue(job, now, attempts=max(0, job.attempts - 1))
    return job, [
        new_event(
            job,
            EventType.QUEUED,
            now,
            reason=reason,
            released_by=released_by,
        )
    ]


def refuse_stale(job: Job, token: Token, *, what: str, now: datetime) -> Event:
    """The event recording an outcome or heartbeat refused under a superseded token."""
    return new_event(
        job,
        EventType.STALE_OUTCOME_REFUSED,
        now,
        refused=what,
        token_attempt=token.attempt,
        token_run=token.run,
        token_worker=token.worker_id,
    )

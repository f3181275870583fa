"""The transactions of running jobs: claim, finish, heartbeat, release, periodic runs.

``Client`` exposes these to workers (and to inline runs); each is one store
transaction that hands records to the rule modules (``lifecycle``,
``scheduling``, ``breakers``) and saves what they return.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import clock, ids
from ..domain import breakers, lifecycle, metrics, schedules, scheduling
from ..domain.lifecycle import Token
from ..records import Job, JobStatus, Result, WorkerInfo
from ..tasks import Task, TaskRegistry

if TYPE_CHECKING:
    from ..client import _Records

Outcome = dict[str, Any]  # see worker/execution.py


def _jitter_fraction() -> float:
    return ids.random_fraction()


class FairTags:
    """Gives jobs their fair tags as they become runnable, in one transaction.

    Reads what ``scheduling.fair_tag`` needs from the engine (each lane's
    virtual time once, each org's ``lanes`` record) and writes the org's new
    next tag. A lane's virtual time does not move with the jobs tagged here
    (each takes a tag at or after it), so it is read once per transaction.
    """

    def __init__(self, tx: Any, now: datetime) -> None:
        self._tx = tx
        self._stamp = clock.to_iso(now)
        self._held_back = breakers.held_back(tx.scan("breakers"), now)
        self._virtual: dict[tuple[str, int], int] = {}

    def stamp(self, job: Job) -> Job:
        """The job with its fair tag if it is runnable now; otherwise as it is.

        Runnable: queued, untagged, and its ``run_after`` has come (a job
        still waiting for it gets its tag when the claim stages it).
        """
        if (
            job.status is not JobStatus.QUEUED
            or job.fair_tag is not None
            or job.run_after > self._stamp
        ):
            return job
        tx, lane = self._tx, (job.queue, job.priority)
        virtual = self._virtual.get(lane)
        if virtual is None:
            virtual = self._virtual[lane] = scheduling.virtual_time(
                tx.lane_head(job.queue, job.priority, self._held_back),
                tx.lane_next_tag(job.queue, job.priority),
            )
        key = scheduling.lane_key(job.queue, job.priority, job.org_id)
        record = tx.get("lanes", key) or {}
        tag, next_tag = scheduling.fair_tag(virtual, record.get("next_tag", 0))
        tx.put(
            "lanes",
            key,
            {
                "queue": job.queue,
                "priority": job.priority,
                "org_id": job.org_id,
                "next_tag": next_tag,
            },
        )
        return dataclasses.replace(job, fair_tag=tag)


def stage(records: _Records, queues: Sequence[str], now: datetime) -> int:
    """Tag the queued jobs of ``queues`` whose run_after has come; returns how many.

    A delayed job or a retry waiting out its backoff joins the claim order
    only now, behind the jobs already waiting at this virtual time: tagged
    when it was queued, it would jump ahead of every org's backlog when it
    came due, or a delayed flood would. Jobs of an older version's store,
    queued without a tag, are tagged here too, in the order they came due.
    """
    due = records.tx.due_untagged(queues, clock.to_iso(now))
    for record in due:
        records.save(records.runnable(Job.from_dict(record), now))
    return len(due)


def finish(
    records: _Records,
    token: Token,
    outcome: Outcome,
    registry: TaskRegistry | None,
    now: datetime,
) -> Job | None:
    """Apply one attempt's outcome; a superseded token is refused and recorded."""
    tx = records.tx
    record = tx.get("jobs", token.job_id)
    if record is None:
        return None
    job = Job.from_dict(record)
    if not lifecycle.holds(job, token):
        records.save(lifecycle.refuse_stale(job, token, what="outcome", now=now))
        records.bump("stale_outcomes_refused_total")
        return None
    task = registry.get(job.task) if registry is not None else None
    config = registry.breaker_of(job.task) if registry is not None else None
    breaker = None
    if config is not None and registry is not None:
        breaker = _breaker(tx, registry, config.name)
    _observe_duration(records, job, now)
    if job.cancel_requested_at is not None:
        # The request was committed first: it wins over what the attempt reports.
        discarded = None
        if not outcome.get("canceled"):
            discarded = "result" if outcome.get("ok") else "error"
        job, added = lifecycle.cancel_running(
            job, via="worker", discarded=discarded, now=now
        )
        _canceled(records, job, added, breaker, now)
        return job
    if outcome.get("ok"):
        stored = outcome.get("value_file") or {}
        result = Result(
            result_id=outcome.get("result_id") or ids.new_id("res", now),
            job_id=job.job_id,
            org_id=job.org_id,
            task=job.task,
            value=None if stored else outcome.get("value"),
            created_at=clock.to_iso(now),
            run=job.run,
            attempt=job.attempts,
            value_file=stored.get("path"),
            value_bytes=stored.get("bytes"),
            value_sha256=stored.get("sha256"),
        )
        job, added = lifecycle.complete(job, result_id=result.result_id, now=now)
        records.save(result, job, *added)
        records.bump("jobs_completed_total")
        if breaker is not None:
            breaker, event = breakers.on_success(breaker, job, now)
            records.save(breaker, event)
    else:
        error = outcome.get("error") or {"type": "Error", "message": "unknown error"}
        policy = retry_policy(task)
        jitter = _jitter_fraction() if policy.jitter else None
        job, added = lifecycle.fail_attempt(
            job,
            error=error,
            retryable=bool(outcome.get("retryable")),
            retry=policy,
            jitter=jitter,
            now=now,
        )
        job = records.runnable(job, now)
        records.save(job, *added)
        records.bump("attempts_failed_total")
        if job.status is JobStatus.FAILED:
            records.bump("jobs_failed_total")
        if breaker is not None and config is not None:
            # A payload that does not fit says nothing of the dependency.
            if outcome.get("caller_error"):
                breaker, event = breakers.on_inconclusive(
                    breaker,
                    job,
                    now,
                    reason="the trial job's payload did not fit its task",
                )
            else:
                breaker, event = breakers.on_failure(breaker, config, job, now)
            records.save(breaker, event)
    return job


def retry_policy(task: Task | None) -> lifecycle.RetryPolicy:
    """The waits between a task's attempts, as the retry rule takes them."""
    if task is None:
        return lifecycle.NO_RETRY_WAIT
    if task.retry_delays is not None:
        return lifecycle.RetryPolicy(delays=task.retry_delays, jitter=task.retry_jitter)
    assert task.retry_backoff is not None
    assert task.retry_delay is not None and task.retry_max_delay is not None
    return lifecycle.RetryPolicy(
        task.retry_backoff,
        task.retry_delay,
        task.retry_max_delay,
        jitter=task.retry_jitter,
    )


def _canceled(
    records: _Records,
    job: Job,
    added: Sequence[Any],
    breaker: breakers.Breaker | None,
    now: datetime,
) -> None:
    """Save a job that ended canceled while running: no failure, no breaker count."""
    records.save(job, *added)
    records.bump("jobs_canceled_total")
    if breaker is not None:
        records.save(
            *breakers.on_inconclusive(
                breaker, job, now, reason="the trial job was canceled"
            )
        )


def _observe_duration(records: _Records, job: Job, now: datetime) -> None:
    """Count the attempt's duration in the stored histogram (never lowered)."""
    if job.started_at is None:
        return
    seconds = max(0.0, (now - clock.parse_iso(job.started_at)).total_seconds())
    records.tx.increment(
        metrics.DURATION,
        metrics.observation(seconds),
        initial=metrics.empty_histogram(),
    )


def _breaker(tx: Any, registry: TaskRegistry, name: str) -> breakers.Breaker:
    """A breaker's record, naming the tasks behind it (for servers without the app)."""
    behind = sorted(t.name for t in registry.tasks.values() if t.breaker == name)
    return dataclasses.replace(
        breakers.Breaker.from_dict(tx.get("breakers", name), name), tasks=behind
    )


def _breaker_of(
    tx: Any, registry: TaskRegistry | None, task: str
) -> breakers.Breaker | None:
    """The breaker a task names, or None."""
    config = registry.breaker_of(task) if registry is not None else None
    if config is None or registry is None:
        return None
    return _breaker(tx, registry, config.name)


class LeaseWatch:
    """How long this process has seen each running job's lease go unrenewed.

    Measured on this process's monotonic clock. A lease's end is a wall-clock
    time that another process wrote; comparing it with this process's wall
    clock goes wrong when the clocks disagree (a process under ``faketime``)
    or the wall clock steps (NTP, a resumed VM): every live lease looks
    over, and live jobs run twice. A lease renewed since changes its end, so
    it is seen anew; one seen unchanged for the holder's whole lease period
    really ran out, whatever the wall clocks say.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._first_seen: dict[tuple[str, int, str | None], float] = {}
        # Leases the wall clock calls over that the watch has not yet seen
        # unrenewed long enough: jobs that become runnable within a lease.
        self.waiting = 0
        # What the last expiry took back: (the job as it left it, the worker
        # that lost it, when that lease had ended). Only true once its
        # transaction commits; a worker clears it before each exchange and
        # logs it after.
        self.rescued: list[tuple[Job, str | None, str | None]] = []

    def unrenewed_seconds(self, jobs: Sequence[Job]) -> dict[str, float]:
        """Seconds since this process first saw each job's current lease."""
        now = self._monotonic()
        seen, ages = {}, {}
        for job in jobs:
            key = (job.job_id, job.attempts, job.lease_expires_at)
            first = seen[key] = self._first_seen.get(key, now)
            ages[job.job_id] = now - first
        self._first_seen = seen  # leases no longer running are forgotten
        return ages


def expire_leases(
    records: _Records,
    registry: TaskRegistry | None,
    now: datetime,
    *,
    watch: LeaseWatch | None = None,
    lease_seconds: float = 0.0,
) -> list[Job]:
    """Requeue (or fail) every running job whose lease ran out.

    With a ``watch``, a lease runs out only when the wall clock says so and
    the watch has also seen it unrenewed for its holder's lease period
    (``lease_seconds`` when the holder is not registered).
    """
    tx = records.tx
    expired = []
    running = [Job.from_dict(r) for r in tx.find("jobs_by_status", "running")]
    unrenewed = watch.unrenewed_seconds(running) if watch is not None else None
    waiting = 0
    for job in running:
        if not lifecycle.lease_expired(job, now):
            continue
        if unrenewed is not None:
            holder = tx.get("workers", job.worker_id or "") or {}
            if unrenewed[job.job_id] < holder.get("lease_seconds", lease_seconds):
                waiting += 1
                continue
        lost = (job.worker_id, job.lease_expires_at)
        job, added = lifecycle.expire_lease(job, now=now)
        if watch is not None:
            watch.rescued.append((job, *lost))
        records.bump("leases_expired_total")
        config = registry.breaker_of(job.task) if registry is not None else None
        breaker = None
        if config is not None and registry is not None:
            breaker = _breaker(tx, registry, config.name)
        if job.status is JobStatus.CANCELED:
            _canceled(records, job, added, breaker, now)
            expired.append(job)
            continue
        job = records.runnable(job, now)
        records.save(job, *added)
        if job.status is JobStatus.FAILED:
            records.bump("jobs_failed_total")
        if breaker is not None and config is not None:
            breaker, event = breakers.on_failure(breaker, config, job, now)
            records.save(breaker, event)
        expired.append(job)
    if watch is not None:
        watch.waiting = waiting
    return expired


def claim(
    records: _Records,
    *,
    worker_id: str,
    queues: Sequence[str],
    limit: int,
    lease_seconds: float,
    registry: TaskRegistry | None,
    now: datetime,
    only_job: str | None = None,
) -> list[tuple[Job, Token]]:
    """Claim up to ``limit`` runnable jobs, the first in claim order (domain/scheduling.py).

    Jobs that came due are tagged first (``stage``). Jobs of tasks a breaker
    holds back are passed over; a claim writes the jobs it takes and their
    events (and a breaker whose trial it starts), nothing shared.
    """
    tx = records.tx
    blocked: set[str] = set()
    trial_open: dict[str, breakers.Breaker] = {}
    if registry is not None:
        for name in registry.breakers:
            breaker = _breaker(tx, registry, name)
            tasks = {t.name for t in registry.tasks.values() if t.breaker == name}
            if breakers.blocks(breaker, now):
                blocked |= tasks
            elif breakers.trial_due(breaker, now):
                trial_open[name] = breaker
    candidates: Iterable[dict[str, Any]]
    if only_job is not None:
        record = tx.get("jobs", only_job)
        found = record is not None and record["status"] == "queued"
        candidates = [record] if found else []
    else:
        stage(records, queues, now)
        candidates = tx.claim_order(queues, blocked)
    claimed: list[tuple[Job, Token]] = []
    if limit <= 0:
        return claimed
    for record in candidates:
        if only_job is None and record["task"] in blocked:
            continue  # a trial claimed above holds back the rest of its breaker
        job = Job.from_dict(record)
        task = registry.get(job.task) if registry is not None else None
        max_retries = task.max_retries if task is not None else 0
        job, event = lifecycle.claim(
            job,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            max_retries=max_retries,
            now=now,
        )
        records.save(job, event)
        if task is not None and task.breaker in trial_open:
            breaker, event = breakers.on_claim(trial_open.pop(task.breaker), job, now)
            records.save(breaker, event)
            blocked |= {
                t.name for t in registry.tasks.values() if t.breaker == task.breaker
            }
        claimed.append((job, lifecycle.token_of(job)))
        if len(claimed) >= limit:
            break
    return claimed


class Beat(NamedTuple):
    """What a heartbeat tells its worker."""

    lost: list[Token]  # leases it no longer holds: their outcomes will be refused
    stop: list[Token]  # attempts whose jobs were canceled: kill their tasks


def heartbeat(
    records: _Records,
    worker: WorkerInfo,
    tokens: Collection[Token],
    now: datetime,
) -> Beat:
    """Renew the leases the worker still holds and its own record.

    Returns the tokens it lost and those whose jobs have a cancel request
    (``lifecycle.stop_requested``); a lease with a request is still renewed,
    so it holds until the worker reports the canceled attempt.
    """
    tx = records.tx
    lost, stop = [], []
    for token in tokens:
        record = tx.get("jobs", token.job_id)
        job = Job.from_dict(record) if record is not None else None
        if job is not None and lifecycle.stop_requested(job, token):
            stop.append(token)
        if job is not None and lifecycle.holds(job, token):
            records.save(
                lifecycle.renew(job, lease_seconds=worker.lease_seconds, now=now)
            )
        else:
            lost.append(token)
            if job is not None:
                records.save(
                    lifecycle.refuse_stale(job, token, what="heartbeat", now=now)
                )
    old = tx.get("workers", worker.worker_id) or {}
    records.save(
        dataclasses.replace(
            worker,
            last_seen_at=clock.to_iso(now),
            running=sorted(t.job_id for t in tokens if t not in lost),
            processed_count=old.get("processed_count", worker.processed_count),
        )
    )
    return Beat(lost, stop)


def release(
    records: _Records,
    tokens: Collection[Token],
    now: datetime,
    registry: TaskRegistry | None = None,
) -> int:
    """Give running jobs back (a stopping worker): queued at once, attempt not counted.

    A job with a cancel request ends canceled instead (it is counted too).
    """
    released = 0
    for token in tokens:
        record = records.tx.get("jobs", token.job_id)
        if record is None:
            continue
        job = Job.from_dict(record)
        if lifecycle.holds(job, token):
            job, added = lifecycle.release(job, now=now)
            breaker = _breaker_of(records.tx, registry, job.task)
            if job.status is JobStatus.CANCELED:
                _canceled(records, job, added, breaker, now)
            else:
                job = records.runnable(job, now)
                records.save(job, *added)
                if breaker is not None:
                    # A released trial proves nothing: without this the
                    # breaker stays half-open on a job no longer running and
                    # holds back every job behind it, that one included.
                    records.save(
                        *breakers.on_inconclusive(
                            breaker,
                            job,
                            now,
                            reason="the trial job was released by a stopping worker",
                        )
                    )
            released += 1
    return released


def due_periodic(registry: TaskRegistry, now: datetime) -> list[dict[str, Any]]:
    """Submission specs for the periodic tasks due now, keyed by their slot."""
    specs = []
    for name, periodic in registry.periodics.items():
        slot = periodic.slot(now)
        if slot is None:
            continue
        specs.append(
            {
                "task": name,
                "org": periodic.org,
                "queue": periodic.task.queue,
                "payload": periodic.payload,
                "idempotency_key": schedules.key(name, slot),
            }
        )
    return specs

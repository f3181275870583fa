"""Running jobs: claim, finish, rescue, heartbeat, release, periodic runs.

``Client`` exposes these to workers (and to inline runs). Each function works
inside one engine transaction (``store/ports.py``): it reads through the
engine's operations what the rules (``lifecycle``, ``breakers``) need, and
saves what they decide. The engine picks the jobs (``claimable``,
``expired_leases``); the rules decide what becomes of them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .. import clock, ids, records
from ..domain import breakers, catalog, lifecycle, metrics, schedules, validation
from ..domain.lifecycle import Token
from ..errors import Conflict, NotFound
from ..records import Job, JobStatus, Result, WorkerInfo
from ..store import Transaction
from ..tasks import Task, TaskRegistry
from ..worker import execution
from . import artifacts

Outcome = dict[str, Any]  # see worker/execution.py


def _jitter_fraction() -> float:
    return ids.random_fraction()


def finish(
    tx: Transaction,
    token: Token,
    outcome: Outcome,
    registry: TaskRegistry | None,
    now: datetime,
) -> Job | None:
    """Apply one attempt's outcome; a superseded token is refused and recorded."""
    job = tx.job(token.job_id)
    if job is None:
        return None
    if not lifecycle.holds(job, token):
        tx.save(lifecycle.refuse_stale(job, token, what="outcome", now=now))
        _bump(tx, "stale_outcomes_refused_total")
        return None
    task = registry.get(job.task) if registry is not None else None
    config = registry.breaker_of(job.task) if registry is not None else None
    breaker = None
    if config is not None and registry is not None:
        breaker = _breaker(tx, registry, config.name)
    _observe_duration(tx, job, now)
    if job.cancel_requested_at is not None:
        # The request was committed first: it wins over what the attempt reports.
        discarded = None
        if not outcome.get("canceled"):
            discarded = "result" if outcome.get("ok") else "error"
        job, added = lifecycle.cancel_running(
            job, via="worker", discarded=discarded, now=now
        )
        _canceled(tx, job, added, breaker, now)
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
        tx.save(result, job, *added)
        _bump(tx, "jobs_completed_total")
        if breaker is not None:
            breaker, event = breakers.on_success(breaker, job, now)
            tx.save(breaker, event)
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
        tx.save(job, *added)
        _bump(tx, "attempts_failed_total")
        if job.status is JobStatus.FAILED:
            _bump(tx, "jobs_failed_total")
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
            tx.save(breaker, event)
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
    tx: Transaction,
    job: Job,
    added: Sequence[Any],
    breaker: breakers.Breaker | None,
    now: datetime,
) -> None:
    """Save a job that ended canceled while running: no failure, no breaker count."""
    tx.save(job, *added)
    _bump(tx, "jobs_canceled_total")
    if breaker is not None:
        tx.save(
            *breakers.on_inconclusive(
                breaker, job, now, reason="the trial job was canceled"
            )
        )


def _observe_duration(tx: Transaction, job: Job, now: datetime) -> None:
    """Count the attempt's duration in the stored histogram (never lowered)."""
    if job.started_at is None:
        return
    seconds = max(0.0, (now - clock.parse_iso(job.started_at)).total_seconds())
    tx.increment(
        metrics.DURATION,
        metrics.observation(seconds),
        initial=metrics.empty_histogram(),
    )


def _bump(tx: Transaction, counter: str) -> None:
    """Add one to a cumulative counter (never lowered, even by retention)."""
    tx.increment(counter, {"value": 1})


def _breaker(tx: Transaction, registry: TaskRegistry, name: str) -> breakers.Breaker:
    """A breaker's record, naming the tasks behind it (for servers without the app)."""
    behind = sorted(t.name for t in registry.tasks.values() if t.breaker == name)
    return dataclasses.replace(
        breakers.Breaker.from_dict(tx.breaker(name), name), tasks=behind
    )


def _breaker_of(
    tx: Transaction, registry: TaskRegistry | None, task: str
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
    tx: Transaction,
    registry: TaskRegistry | None,
    now: datetime,
    *,
    watch: LeaseWatch | None = None,
    lease_seconds: float = 0.0,
    limit: int = 100,
    timed: bool = True,
) -> list[Job]:
    """Requeue (or fail) up to ``limit`` running jobs whose lease ran out.

    The engine finds them (``expired_leases``: only those, never every
    running job). With a ``watch``, a lease runs out only when the wall clock
    says so and the watch has also seen it unrenewed for its holder's lease
    period (``lease_seconds`` when the holder is not registered). The watch
    must see each lease from its last renewal on, so it is shown every
    running job (one per busy worker slot): it serves engines whose
    processes each read their own wall clock, as the JSON file's do; with
    ``timed`` False (an engine with one clock) it only records what is rescued.
    """
    expired = []
    unrenewed = None
    if watch is None or not timed:
        over = tx.expired_leases(limit)
    else:
        running = tx.running_jobs()
        unrenewed = watch.unrenewed_seconds(running)
        over = sorted(
            (job for job in running if lifecycle.lease_expired(job, now)),
            key=lambda job: (job.lease_expires_at or "", job.job_id),
        )[:limit]
    waiting = 0
    for job in over:
        if unrenewed is not None:
            holder = tx.worker(job.worker_id or "") or {}
            if unrenewed[job.job_id] < holder.get("lease_seconds", lease_seconds):
                waiting += 1
                continue
        lost = (job.worker_id, job.lease_expires_at)
        job, added = lifecycle.expire_lease(job, now=now)
        if watch is not None:
            watch.rescued.append((job, *lost))
        _bump(tx, "leases_expired_total")
        config = registry.breaker_of(job.task) if registry is not None else None
        breaker = None
        if config is not None and registry is not None:
            breaker = _breaker(tx, registry, config.name)
        if job.status is JobStatus.CANCELED:
            _canceled(tx, job, added, breaker, now)
            expired.append(job)
            continue
        tx.save(job, *added)
        if job.status is JobStatus.FAILED:
            _bump(tx, "jobs_failed_total")
        if breaker is not None and config is not None:
            breaker, event = breakers.on_failure(breaker, config, job, now)
            tx.save(breaker, event)
        expired.append(job)
    if watch is not None:
        watch.waiting = waiting
    return expired


def claim(
    tx: Transaction,
    *,
    worker_id: str,
    queues: Sequence[str],
    limit: int,
    lease_seconds: float,
    registry: TaskRegistry | None,
    now: datetime,
    only_job: str | None = None,
    ahead: int = 0,
) -> list[tuple[Job, Token]]:
    """Claim up to ``limit`` runnable jobs, the first in claim order (domain/scheduling.py).

    The engine picks them (``claimable``). Jobs of tasks a breaker
    holds back are passed over; a claim writes the jobs it takes and their
    events (and a breaker whose trial it starts), nothing shared. Up to
    ``ahead`` more are taken for a worker to hold, as long as each may be
    held (``_may_hold``): the first that may not ends the claim, so that
    held jobs never pass it.
    """
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
    claimed: list[tuple[Job, Token]] = []
    if limit + ahead <= 0:
        return claimed
    candidates = tx.claimable(
        queues, exclude_tasks=blocked, only_job=only_job, want=limit + ahead
    )
    for job in candidates:
        if only_job is None and job.task in blocked:
            continue  # a trial claimed above holds back the rest of its breaker
        task = registry.get(job.task) if registry is not None else None
        if len(claimed) >= limit and not _may_hold(job, task):
            break  # held jobs are the head of the claim order, nothing past it
        max_retries = task.max_retries if task is not None else 0
        job, event = lifecycle.claim(
            job,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            max_retries=max_retries,
            now=now,
        )
        tx.save(job, event)
        if task is not None and task.breaker in trial_open:
            breaker, event = breakers.on_claim(trial_open.pop(task.breaker), job, now)
            tx.save(breaker, event)
            blocked |= {
                t.name for t in registry.tasks.values() if t.breaker == task.breaker
            }
        claimed.append((job, lifecycle.token_of(job)))
        if len(claimed) >= limit + ahead:
            break
    return claimed


def _may_hold(job: Job, task: Task | None) -> bool:
    """Whether a worker may claim this job ahead, to start it later.

    Not a job behind a circuit breaker (one that opens meanwhile would not
    hold it back), nor one this claim leaves no retry: if the worker died
    holding it, the rescue of its lease would count the attempt and fail it
    for good without its task ever having run.
    """
    if task is None or task.breaker is not None:
        return False
    limit = job.max_retries if job.max_retries is not None else task.max_retries
    return job.attempts < limit


class Beat(NamedTuple):
    """What a heartbeat tells its worker."""

    lost: list[Token]  # leases it no longer holds: their outcomes will be refused
    stop: list[Token]  # attempts whose jobs were canceled: kill their tasks


def heartbeat(
    tx: Transaction,
    worker: WorkerInfo,
    tokens: Collection[Token],
    now: datetime,
) -> Beat:
    """Renew the leases the worker still holds and its own record.

    Returns the tokens it lost and those whose jobs have a cancel request
    (``lifecycle.stop_requested``); a lease with a request is still renewed,
    so it holds until the worker reports the canceled attempt.
    """
    lost, stop = [], []
    for token in tokens:
        job = tx.job(token.job_id)
        if job is not None and lifecycle.stop_requested(job, token):
            stop.append(token)
        if job is not None and lifecycle.holds(job, token):
            tx.save(lifecycle.renew(job, lease_seconds=worker.lease_seconds, now=now))
        else:
            lost.append(token)
            if job is not None:
                tx.save(lifecycle.refuse_stale(job, token, what="heartbeat", now=now))
    old = tx.worker(worker.worker_id) or {}
    tx.save(
        records.replace(
            worker,
            last_seen_at=clock.to_iso(now),
            running=sorted(t.job_id for t in tokens if t not in lost),
            processed_count=old.get("processed_count", worker.processed_count),
        )
    )
    return Beat(lost, stop)


def release(
    tx: Transaction,
    tokens: Collection[Token],
    now: datetime,
    registry: TaskRegistry | None = None,
    reason: str = "worker_shutdown",
) -> int:
    """Give running jobs back: queued at once, attempt not counted (``lifecycle.release``).

    A job with a cancel request ends canceled instead (it is counted too).
    """
    released = 0
    for token in tokens:
        job = tx.job(token.job_id)
        if job is None:
            continue
        if lifecycle.holds(job, token):
            job, added = lifecycle.release(job, now=now, reason=reason)
            breaker = _breaker_of(tx, registry, job.task)
            if job.status is JobStatus.CANCELED:
                _canceled(tx, job, added, breaker, now)
            else:
                tx.save(job, *added)
                if breaker is not None:
                    # A released trial proves nothing: without this the
                    # breaker stays half-open on a job no longer running and
                    # holds back every job behind it, that one included.
                    tx.save(
                        *breakers.on_inconclusive(
                            breaker,
                            job,
                            now,
                            reason="the trial job was given back by its worker",
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


class Runner:
    """The worker protocol over one store: each call one engine transaction.

    ``Client`` hands these on to workers (``worker/loop.py``) and to inline
    runs. ``submit_many`` is the job service's, for periodic runs.
    """

    def __init__(
        self,
        store: Any,
        clock: Callable[[], datetime] | None,
        submit_many: Callable[..., list[Job]],
        *,
        artifacts_folder: str,
        inline_bytes: int | None,
    ) -> None:
        self.store = store
        self.inline_bytes = inline_bytes
        self.clock = clock
        self.artifacts_folder = artifacts_folder
        self.submit_many = submit_many

    def _now(self) -> datetime:
        return (self.clock or clock.now)()

    def prepare_outcome(self, token: Token, outcome: Outcome) -> Outcome:
        return artifacts.prepare_outcome(
            token,
            outcome,
            folder=self.artifacts_folder,
            inline_bytes=self.inline_bytes,
            clock=self._now,
        )

    def exchange(
        self,
        worker: WorkerInfo,
        outcomes: Sequence[tuple[Token, Outcome]],
        *,
        want: int,
        registry: TaskRegistry | None,
        expire: bool = True,
        watch: LeaseWatch | None = None,
        ahead: int = 0,
    ) -> tuple[list[Job], list[tuple[Job, Token]]]:
        outcomes = [
            (token, self.prepare_outcome(token, outcome)) for token, outcome in outcomes
        ]
        refused: list[Outcome] = []
        with self.store.transaction(clock=self.clock) as tx:
            now = tx.now
            finished = []
            tx.prefetch_jobs([token.job_id for token, _ in outcomes])
            for token, outcome in outcomes:
                job = finish(tx, token, outcome, registry, now)
                if job is None or job.status is JobStatus.CANCELED:
                    refused.append(outcome)  # its value is kept nowhere
                if job is not None:
                    finished.append(job)
            if finished:
                tx.update_worker(worker.worker_id, {}, processed=len(finished))
            if expire:
                expire_leases(
                    tx,
                    registry,
                    now,
                    watch=watch,
                    lease_seconds=worker.lease_seconds,
                    # one clock for every host: a lease ends for all alike
                    timed=not self.store.one_clock,
                )
            claimed = (
                claim(
                    tx,
                    worker_id=worker.worker_id,
                    queues=worker.queues,
                    limit=want,
                    lease_seconds=worker.lease_seconds,
                    registry=registry,
                    now=now,
                    ahead=ahead,
                )
                if want + ahead > 0
                else []
            )
        for outcome in refused:  # a stale or canceled attempt's value has no record
            artifacts.discard_outcome(outcome)
        return finished, claimed

    def heartbeat(self, worker: WorkerInfo, tokens: Collection[Token]) -> Beat:
        with self.store.transaction(clock=self.clock) as tx:
            return heartbeat(tx, worker, tokens, tx.now)

    def release(
        self,
        tokens: Collection[Token],
        worker: WorkerInfo | None,
        registry: TaskRegistry | None,
        reason: str = "worker_shutdown",
    ) -> int:
        with self.store.transaction(clock=self.clock) as tx:
            released = release(tx, tokens, tx.now, registry, reason)
            if worker is not None:
                tx.update_worker(
                    worker.worker_id,
                    {
                        "state": "stopped",
                        "running": [],
                        "last_seen_at": clock.to_iso(tx.now),
                    },
                    default=worker.to_dict(),
                )
        return released

    def enqueue_periodic(self, registry: TaskRegistry) -> list[Job]:
        specs = due_periodic(registry, self._now())
        return self.submit_many(specs, tasks=registry) if specs else []

    def register_worker(
        self, worker: WorkerInfo, tasks: TaskRegistry | None
    ) -> WorkerInfo:
        with self.store.transaction(clock=self.clock) as tx:
            tx.save(worker)
            if tasks is not None:
                tx.publish_catalog(
                    catalog.published(
                        tasks.describe(), now=tx.now, worker_id=worker.worker_id
                    )
                )
        return worker

    def run_job(
        self,
        job_id: str,
        *,
        org: str,
        tasks: TaskRegistry,
        until_done: bool,
        get_job: Callable[..., Job],
    ) -> Job:
        worker = self._inline_worker()
        while True:
            with self.store.transaction(clock=self.clock) as tx:
                job = tx.job(job_id) if isinstance(job_id, str) else None
                if job is None or job.org_id != org:
                    raise NotFound(f"job {validation.shown_id(job_id)} not found")
                if job.status is not JobStatus.QUEUED:
                    raise Conflict(
                        f"job {job.job_id} is {job.status.value}; only a queued job can run"
                    )
                claimed = claim(
                    tx,
                    worker_id=worker.worker_id,
                    queues=[job.queue],
                    limit=1,
                    lease_seconds=worker.lease_seconds,
                    registry=tasks,
                    now=tx.now,
                    only_job=job.job_id,
                )
            ((job, token),) = claimed
            spec = execution.spec_of(job)
            outcome = execution.run(tasks.get(job.task), spec)
            finished, _ = self.exchange(
                worker, [(token, outcome)], want=0, registry=tasks, expire=False
            )
            job = finished[0] if finished else get_job(job_id, org=org)
            if not until_done or job.status is not JobStatus.QUEUED:
                return job

    def _inline_worker(self) -> WorkerInfo:
        import os
        import socket

        now = clock.to_iso(self._now())
        return WorkerInfo(
            worker_id=ids.new_id("wrk", self._now()),
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=[],
            concurrency=1,
            started_at=now,
            last_seen_at=now,
            heartbeat_seconds=10.0,
            lease_seconds=300.0,
            state="inline",
        )

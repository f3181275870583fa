"""Jobs: submit, read, page, wait for, cancel and retry, for one org at a time.

Each operation checks its input first (InvalidInput, before anything is
written), then runs as one engine transaction (``store/ports.py``): it reads
what a rule needs, calls the rule (``domain/lifecycle.py``), and hands the
decision to the engine. A job of another org is answered exactly as a
missing one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import clock as clocks
from ..domain import bulk, lifecycle, validation, waiting
from ..domain import catalog as task_catalog
from ..domain.paging import Page
from ..errors import InvalidInput, NotFound, WaitTimedOut
from ..records import Event, Job, JobStatus
from ..store import Store, Transaction
from ..tasks import TaskRegistry

SUBMIT_FIELDS = frozenset(
    {
        "task",
        "org",
        "payload",
        "queue",
        "priority",
        "delay",
        "at",
        "idempotency_key",
        "max_retries",
    }
)


def statuses(
    status: str | JobStatus | Collection[str | JobStatus],
) -> list[str]:
    """Status values, checked: one given alone, or a collection of them."""
    if isinstance(status, str):
        given: list[object] = [status]
    elif isinstance(status, Iterable):
        given = list(status)
    else:
        given = [status]  # refused below, naming it
    found = []
    for value in given:
        try:
            found.append(JobStatus(value).value)
        except ValueError as exc:
            choices = ", ".join(s.value for s in JobStatus)
            raise InvalidInput(
                f"status: {validation.shown(value)} is not one of {choices}"
            ) from exc
    return found


def job_of(tx: Transaction, job_id: str, *, org: str) -> Job:
    """The org's job; NotFound for a missing id and another org's alike."""
    job = tx.job(job_id) if isinstance(job_id, str) else None
    if job is None or job.org_id != org:
        raise NotFound(f"job {validation.shown_id(job_id)} not found")
    return job


def _catalog_source(tx: Transaction) -> str | None:
    """Whether submissions consult the task catalog: only once a worker filled it."""
    return task_catalog.CATALOG if tx.catalog_size() else None


def _route(
    tx: Transaction, args: dict[str, Any], source: str | None, allow_unknown: bool
) -> None:
    """Fill in the queue and priority a prepared spec left open, from the catalog."""
    declared = tx.catalog_entry(args["task"]) if source else None
    queue, priority = task_catalog.routing(
        args["task"], declared, source=source, allow_unknown=allow_unknown
    )
    if args["queue"] is None:
        args["queue"] = queue
    if args["priority"] is None:
        args["priority"] = priority


class Jobs:
    """The job operations of one store (``Client`` hands them on)."""

    def __init__(
        self,
        store: Store,
        clock: clocks.Clock | None,
        app: TaskRegistry | None,
        *,
        max_payload_bytes: int,
    ) -> None:
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock  # None: the engine's own
        self.app = app

    def _now(self) -> datetime:
        return (self.clock or clocks.now)()

    # -- submitting ------------------------------------------------------------

    def submit_many(
        self,
        specs: Iterable[Mapping[str, Any]],
        *,
        org: str | None = None,
        tasks: TaskRegistry | None = None,
        allow_unknown: bool = False,
        labels: Sequence[str] | None = None,
    ) -> list[Job]:
        """See ``Client.submit_many``."""
        registry = tasks if tasks is not None else self.app
        specs = list(specs)
        names = list(labels) if labels is not None else None
        if names is not None and len(names) != len(specs):
            raise InvalidInput("labels: give one label per spec")

        def where(n: int, exc: InvalidInput) -> InvalidInput:
            label = names[n] if names is not None else f"item {n + 1}"
            return type(exc)(f"{label}: {exc.message}")

        checked_at = self._now()
        prepared = []
        for n, spec in enumerate(specs):
            try:
                prepared.append(
                    self._prepare(spec, org, checked_at, registry, allow_unknown)
                )
            except InvalidInput as exc:
                if len(specs) == 1 and names is None:
                    raise
                raise where(n, exc) from exc
        with self.store.transaction(clock=self.clock) as tx:
            if registry is None:
                source = _catalog_source(tx)
                for n, args in enumerate(prepared):
                    try:
                        _route(tx, args, source, allow_unknown)
                    except InvalidInput as exc:
                        if len(specs) == 1 and names is None:
                            raise
                        raise where(n, exc) from exc
            now = tx.now
            new: list[tuple[Job, Event]] = []
            for args in prepared:
                when = args.pop("when")
                new.append(
                    lifecycle.submit(
                        now=now, run_after=lifecycle.run_after(now, **when), **args
                    )
                )
            return tx.submit(new)

    def validate(
        self,
        spec: Mapping[str, Any],
        *,
        org: str | None = None,
        tasks: TaskRegistry | None = None,
        allow_unknown: bool = False,
    ) -> None:
        """Raise InvalidInput if ``submit_many`` would refuse this spec."""
        registry = tasks if tasks is not None else self.app
        args = self._prepare(spec, org, self._now(), registry, allow_unknown)
        if registry is None:
            with self.store.read(clock=self.clock) as tx:
                _route(tx, args, _catalog_source(tx), allow_unknown)

    def _prepare(
        self,
        spec: Mapping[str, Any],
        org: str | None,
        now: datetime,
        registry: TaskRegistry | None = None,
        allow_unknown: bool = False,
    ) -> dict[str, Any]:
        """A spec checked; without an app, queue and priority are left to ``_route``."""
        if not isinstance(spec, Mapping):
            raise InvalidInput(
                f"a job must be a JSON object, not {type(spec).__name__}"
            )
        unknown = sorted(set(spec) - SUBMIT_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(map(str, unknown))}")
        job_org = spec.get("org") if spec.get("org") is not None else org
        if org is not None and spec.get("org") not in (None, org):
            raise InvalidInput(
                f"org: {validation.shown(spec.get('org'))} differs from {org}"
            )
        if "task" not in spec:
            raise InvalidInput("task: missing")
        delay = validation.delay(0 if spec.get("delay") is None else spec["delay"])
        at = spec.get("at")
        if at is not None and delay:
            raise InvalidInput("give either delay or at, not both")
        if at is not None:
            at = validation.at(at, now)
        task = validation.name(spec["task"], "task")
        payload = validation.payload(
            spec.get("payload"), max_bytes=self.max_payload_bytes
        )
        queue = spec.get("queue")
        priority = spec.get("priority")
        if registry is not None:
            declared = registry.get(task)
            if declared is not None:
                problem = declared.payload_problem(payload)
                if problem is not None:
                    raise InvalidInput(f"payload: {problem}")
            routed = task_catalog.routing(
                task,
                None
                if declared is None
                else {"queue": declared.queue, "priority": declared.priority},
                source=task_catalog.APP,
                allow_unknown=allow_unknown,
            )
            queue = routed[0] if queue is None else queue
            priority = routed[1] if priority is None else priority
        return {
            "task": task,
            "org": validation.org(job_org),
            "payload": payload,
            "queue": None if queue is None else validation.name(queue, "queue"),
            "priority": None if priority is None else validation.priority(priority),
            # run_after is reckoned from the transaction's moment
            "when": {"delay": delay, "at": at},
            "idempotency_key": validation.idempotency_key(spec.get("idempotency_key")),
            "max_retries": validation.max_retries(spec.get("max_retries")),
        }

    # -- reading ---------------------------------------------------------------

    def get(self, job_id: str, *, org: str) -> Job:
        validation.org(org)
        with self.store.read(clock=self.clock) as tx:
            return job_of(tx, job_id, org=org)

    def by_key(self, key: str, *, org: str) -> Job:
        validation.org(org)
        checked = validation.idempotency_key(key)
        with self.store.read(clock=self.clock) as tx:
            job = None if checked is None else tx.job_by_key(org, checked)
        if job is None:
            raise NotFound(f"no job has idempotency key {validation.shown(key)}")
        return job

    def wait(self, job_id: str, *, org: str, timeout: float | None, poll: float) -> Job:
        validation.org(org)
        if timeout is not None:
            validation.seconds(timeout, "timeout", validation.WAIT_SECONDS)
        validation.seconds(poll, "poll", validation.POLL_SECONDS)
        job = waiting.until(
            lambda: self.get(job_id, org=org),
            lambda job: job.status.terminal,
            timeout=timeout,
            cap=poll,
        )
        if not job.status.terminal:
            raise WaitTimedOut(
                f"job {job.job_id} is still {job.status.value} after {timeout:g} s"
            )
        return job

    def page(
        self,
        *,
        org: str,
        status: str | JobStatus | Collection[str | JobStatus] | None,
        queue: str | None,
        task: str | None,
        limit: int,
        cursor: str | None,
        error_type: str | None = None,
    ) -> Page[Job]:
        validation.org(org)
        validation.limit(limit)
        wanted = None if status is None else statuses(status)
        if queue is not None:
            validation.name(queue, "queue")
        if task is not None:
            validation.name(task, "task")
        bulk.check_error_type(error_type)
        with self.store.read(clock=self.clock) as tx:
            found, next_cursor = tx.page_jobs(
                org,
                statuses=wanted,
                queue=queue,
                task=task,
                limit=limit,
                cursor=cursor,
                error_type=error_type,
            )
            return Page([Job.from_dict(r) for r in found], next_cursor)

    def page_events(
        self, job_id: str, *, org: str, limit: int, cursor: str | None
    ) -> Page[Event]:
        validation.org(org)
        validation.limit(limit)
        with self.store.read(clock=self.clock) as tx:
            job_of(tx, job_id, org=org)
            found, next_cursor = tx.page_events(
                job_id, org=org, limit=limit, cursor=cursor
            )
            return Page([Event.from_dict(r) for r in found], next_cursor)

    def events(self, job_id: str, *, org: str) -> list[Event]:
        validation.org(org)
        found: list[Event] = []
        with self.store.read(clock=self.clock) as tx:
            job_of(tx, job_id, org=org)
            cursor = None
            while True:
                page, cursor = tx.page_events(
                    job_id, org=org, limit=validation.MAX_LIMIT, cursor=cursor
                )
                found += (Event.from_dict(r) for r in page)
                if cursor is None:
                    return found

    # -- changing one job ------------------------------------------------------

    def cancel(self, job_id: str, *, org: str) -> Job:
        validation.org(org)
        with self.store.transaction(clock=self.clock) as tx:
            job = job_of(tx, job_id, org=org)
            job, added = lifecycle.cancel(job, now=tx.now)
            if added:
                tx.save(job, *added)
            if job.status is JobStatus.CANCELED:
                tx.increment("jobs_canceled_total", {"value": 1})
        return job

    def retry(self, job_id: str, *, org: str) -> Job:
        validation.org(org)
        with self.store.transaction(clock=self.clock) as tx:
            job = job_of(tx, job_id, org=org)
            job, event = lifecycle.retry(job, now=tx.now)
            tx.save(job, event)
            tx.increment("jobs_retried_total", {"value": 1})
            # the engine gave it its fair tag as it saved it
            saved = tx.job(job.job_id)
        return saved if saved is not None else job

    def count(
        self, wanted: bulk.Criteria, *, org: str, up_to: int = bulk.COUNT_UP_TO
    ) -> bulk.Count:
        """How many of the org's jobs ``wanted`` matches in all, up to ``up_to``."""
        validation.org(org)
        up_to = validation.count(up_to, "up_to", (0, 10_000_000))
        with self.store.read(clock=self.clock) as tx:
            jobs, more = tx.count_matching(org, wanted, up_to)
        return bulk.Count(jobs, more=more)

    def bulk(
        self,
        wanted: bulk.Criteria,
        *,
        org: str | None,
        dry_run: bool = False,
        limit: int = bulk.MAX_JOBS,
    ) -> bulk.Bulk:
        """See ``Client.retry_matching``: one transaction, at most ``limit`` jobs.

        ``org`` None: the jobs of every org, org by org (sorted by name).
        """
        if org is not None:
            validation.org(org)
        limit = validation.limit(limit, maximum=bulk.MAX_JOBS)
        opened = self.store.read if dry_run else self.store.transaction
        with opened(clock=self.clock) as tx:
            orgs = [org] if org is not None else tx.job_orgs(wanted.statuses)
            matched: list[Job] = []
            more = False
            for n, each in enumerate(orgs):
                found, more = _matching(tx, each, wanted, limit - len(matched))
                matched += found
                if more:
                    break
                if len(matched) == limit:  # more if a later org has a match
                    more = any(_matching(tx, o, wanted, 0)[1] for o in orgs[n + 1 :])
                    break
            if not dry_run and matched:
                now = tx.now
                if wanted.action == "retry":
                    for job in matched:
                        tx.save(*lifecycle.retry(job, now=now))
                    tx.increment("jobs_retried_total", {"value": len(matched)})
                else:
                    canceled = 0
                    for job in matched:
                        job, added = lifecycle.cancel(job, now=now)
                        tx.save(job, *added)
                        canceled += job.status is JobStatus.CANCELED
                    if canceled:
                        tx.increment("jobs_canceled_total", {"value": canceled})
        return bulk.Bulk(
            action=wanted.action,
            count=len(matched),
            ids=[job.job_id for job in matched],
            more=more,
            dry_run=dry_run,
        )


def _matching(
    tx: Transaction, org: str, wanted: bulk.Criteria, limit: int
) -> tuple[list[Job], bool]:
    """Up to ``limit`` (0 or more) of the org's jobs ``wanted`` matches, newest
    first, and whether more match. Walks the org's jobs of those statuses (and
    queue, task and error type) a page at a time; the other filters are
    checked on each."""
    matched: list[Job] = []
    cursor = None
    while True:
        found, cursor = tx.page_jobs(
            org,
            statuses=wanted.statuses,
            queue=wanted.queue,
            task=wanted.task,
            limit=_PAGE,
            cursor=cursor,
            error_type=wanted.error_type,
        )
        for record in found:
            job = Job.from_dict(record)
            if wanted.matches(job):
                if len(matched) == limit:
                    return matched, True
                matched.append(job)
        if cursor is None:
            return matched, False


_PAGE = 1000  # jobs read at a time while looking for matches
